#include "common/names.h"

#include <cctype>

namespace slipway {

std::string SanitizeName(std::string_view raw) {
  std::string out;
  for (char c : raw) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      out.push_back(static_cast<char>(std::tolower(u)));
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 63) out.resize(63);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

Status ValidateName(std::string_view name, std::string_view what) {
  bool ok = !name.empty() && name.size() <= 63 && name.front() != '-' && name.back() != '-';
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      ok = false;
    }
  }
  if (ok) return Status::Ok();
  return InvalidArgument(std::string(what) + " \"" + std::string(name) +
                         "\" is not valid: use 1-63 lowercase letters, digits and '-', "
                         "not starting or ending with '-'");
}

Result<std::string> NormalizeDomain(std::string_view host) {
  std::string h;
  for (char c : host) h.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  while (!h.empty() && h.back() == '.') h.pop_back();
  std::string bad = "domain \"" + std::string(host) + "\" is not a valid host name";
  std::string_view rest = h;
  if (rest.substr(0, 2) == "*.") rest.remove_prefix(2);
  if (rest.empty() || h.size() > 253 || rest.find('.') == std::string_view::npos) {
    return InvalidArgument(bad + " (expected something like api.example.com)");
  }
  size_t label = 0;
  for (size_t i = 0; i <= rest.size(); ++i) {
    char c = i < rest.size() ? rest[i] : '.';
    if (c == '.') {
      if (label == 0 || label > 63) return InvalidArgument(bad + " (empty or too long label)");
      if (rest[i - 1] == '-' || rest[i - label] == '-') {
        return InvalidArgument(bad + " (a label starts or ends with '-')");
      }
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return InvalidArgument(bad + " (only letters, digits, '-' and '.' are allowed)");
    }
    label++;
  }
  return h;
}

}  // namespace slipway
