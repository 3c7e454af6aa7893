#include "deploy/variables.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "secrets/secrets.h"

namespace slipway {

namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// A variable: (scope, name); scope "" is the shared set, else a service's name.
using Node = std::pair<std::string, std::string>;

std::string NodeName(const Node& n) {
  return (n.first.empty() ? std::string("shared") : n.first) + "." + n.second;
}

std::string Describe(const Node& n) {
  if (n.first.empty()) return "shared variable " + n.second;
  return "variable " + n.second + " of service \"" + n.first + "\"";
}

struct Value {
  std::string text;
  bool secret = false;
};

class Resolver {
 public:
  Resolver(const VariableScope& scope, Resolution& out) : scope_(scope), out_(out) {}

  const ServiceVariables* FindService(const std::string& name) const {
    for (const auto& s : scope_.services) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  // Whether the variable exists in the scope's own layers (a service's own, not shared).
  bool OwnedBy(const std::string& scope, const std::string& name) const {
    if (scope.empty()) {
      return scope_.shared_user.count(name) != 0 || scope_.shared_config.count(name) != 0;
    }
    const ServiceVariables* svc = FindService(scope);
    return svc != nullptr && (svc->user.count(name) != 0 || svc->config.count(name) != 0);
  }

  // Whether `${{ name }}` in `scope` finds something (a service sees the shared set too).
  bool Visible(const std::string& scope, const std::string& name) const {
    return OwnedBy(scope, name) || (!scope.empty() && OwnedBy("", name));
  }

  Result<Value> Resolve(const std::string& scope, const std::string& name) {
    Node node{scope, name};
    if (!scope.empty() && !OwnedBy(scope, name)) node.first.clear();  // a shared one
    if (auto it = memo_.find(node); it != memo_.end()) return it->second;
    auto on_stack = std::find(stack_.begin(), stack_.end(), node);
    if (on_stack != stack_.end()) {
      std::string cycle;
      for (auto it = on_stack; it != stack_.end(); ++it) cycle += NodeName(*it) + " -> ";
      return InvalidArgument(Describe(*on_stack) + ": reference cycle: " + cycle + NodeName(node));
    }
    // The layer that wins, and whether it holds a secret.
    std::string text;
    bool secret = false;
    if (node.first.empty()) {
      if (auto it = scope_.shared_user.find(name); it != scope_.shared_user.end()) {
        text = it->second;
        secret = scope_.shared_user_secret.count(name) != 0;
      } else {
        text = scope_.shared_config.at(name);
      }
    } else {
      const ServiceVariables* svc = FindService(node.first);
      if (auto it = svc->user.find(name); it != svc->user.end()) {
        text = it->second;
        secret = svc->user_secret.count(name) != 0;
      } else {
        text = svc->config.at(name);
        secret = svc->config_secret.count(name) != 0;
      }
    }
    stack_.push_back(node);
    Result<Value> value = Evaluate(node, text);
    stack_.pop_back();
    if (!value.ok()) return value;
    value->secret = value->secret || secret;
    memo_[node] = *value;
    return value;
  }

 private:
  Result<Value> Evaluate(const Node& node, const std::string& text) {
    Value out;
    int generated = 0;
    size_t pos = 0;
    while (true) {
      size_t open = text.find("${{", pos);
      if (open == std::string::npos) {
        out.text += text.substr(pos);
        return out;
      }
      out.text += text.substr(pos, open - pos);
      size_t close = text.find("}}", open + 3);
      if (close == std::string::npos) {
        return InvalidArgument(Describe(node) +
                               ": unterminated \"${{\" (a reference ends with \"}}\")");
      }
      const std::string inner = Trim(std::string_view(text).substr(open + 3, close - open - 3));
      const std::string shown = "${{ " + inner + " }}";
      auto fail = [&](const std::string& why) {
        return InvalidArgument(Describe(node) + ": " + shown + ": " + why);
      };
      pos = close + 2;

      if (inner.rfind("secret(", 0) == 0) {
        if (++generated > 1) return fail("one ${{ secret() }} per variable");
        ASSIGN_OR_RETURN(std::string value, Generated(node, inner, fail));
        out.text += value;
        out.secret = true;
        continue;
      }
      size_t dot = inner.find('.');
      if (dot == std::string::npos) {
        if (!IsValidVariableName(inner)) return fail("\"" + inner + "\" is not a variable name");
        if (!Visible(node.first, inner)) {
          return fail(node.first.empty()
                          ? "no shared variable " + inner
                          : "service \"" + node.first + "\" has no variable " + inner);
        }
        ASSIGN_OR_RETURN(Value v, Resolve(node.first, inner));
        Append(out, v);
        continue;
      }
      const std::string head = inner.substr(0, dot);
      const std::string key = inner.substr(dot + 1);
      if (!IsValidVariableName(key)) return fail("\"" + key + "\" is not a variable name");
      if (head == "shared") {
        if (!OwnedBy("", key)) return fail("no shared variable " + key);
        ASSIGN_OR_RETURN(Value v, Resolve("", key));
        Append(out, v);
        continue;
      }
      if (const ServiceVariables* svc = FindService(head)) {
        if (auto it = svc->platform.find(key); it != svc->platform.end()) {
          out.text += it->second;
          continue;
        }
        if (!Visible(head, key)) return fail("service \"" + head + "\" has no variable " + key);
        ASSIGN_OR_RETURN(Value v, Resolve(head, key));
        Append(out, v);
        continue;
      }
      if (scope_.addon) {
        if (auto vars = scope_.addon(head)) {
          auto it = vars->values.find(key);
          if (it == vars->values.end()) {
            return fail("add-on \"" + head + "\" has no variable " + key);
          }
          out.text += it->second;
          // Passwords and the URLs holding them are secret; PGUSER or PGPORT are not (the
          // user is the project's name, which masking would blank out everywhere).
          out.secret = out.secret || vars->secret.count(key) > 0;
          continue;
        }
      }
      return fail("no service or add-on named \"" + head + "\" in project \"" + scope_.project +
                  "\" (" + scope_.environment + ")");
    }
  }

  static void Append(Value& out, const Value& v) {
    out.text += v.text;
    out.secret = out.secret || v.secret;
  }

  // secret(N) or secret(N, "alphabet"): the value kept from an earlier deploy, else a
  // new one (kept by the caller once the deploy is accepted).
  template <typename Fail>
  Result<std::string> Generated(const Node& node, const std::string& inner, Fail fail) {
    if (inner.back() != ')') return fail("expected secret(LENGTH) or secret(LENGTH, \"alphabet\")");
    std::string args = inner.substr(7, inner.size() - 8);
    std::string length_text = Trim(args.substr(0, args.find(',')));
    std::string alphabet;
    if (size_t comma = args.find(','); comma != std::string::npos) {
      std::string quoted = Trim(args.substr(comma + 1));
      if (quoted.size() < 2 || quoted.front() != '"' || quoted.back() != '"') {
        return fail("the alphabet is a quoted string: secret(32, \"abcdef0123456789\")");
      }
      alphabet = quoted.substr(1, quoted.size() - 2);
    }
    if (length_text.empty() || length_text.find_first_not_of("0123456789") != std::string::npos ||
        length_text.size() > 5) {
      return fail("the length must be a number from 1 to 4096");
    }
    const std::map<std::string, std::string>* kept = &scope_.shared_generated;
    if (!node.first.empty()) kept = &FindService(node.first)->generated;
    if (auto it = kept->find(node.second); it != kept->end()) return it->second;
    auto& fresh = out_.generated[node.first];
    if (auto it = fresh.find(node.second); it != fresh.end()) return it->second;
    auto value = GenerateSecret(std::stoi(length_text), alphabet);
    if (!value.ok()) return fail(value.status().message());
    fresh[node.second] = *value;
    return *value;
  }

  const VariableScope& scope_;
  Resolution& out_;
  std::map<Node, Value> memo_;
  std::vector<Node> stack_;
};

}  // namespace

bool IsValidVariableName(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

Status CheckSettableVariableName(const std::string& name) {
  if (!IsValidVariableName(name)) {
    return InvalidArgument("\"" + name +
                           "\" is not a variable name: use letters, digits and _, not starting "
                           "with a digit");
  }
  if (name == "PORT" || name.rfind("SLIPWAY_", 0) == 0) {
    return InvalidArgument(name +
                           " is set by Slipway itself and cannot be changed (PORT and "
                           "SLIPWAY_* are reserved)");
  }
  return Status::Ok();
}

Result<Resolution> ResolveVariables(const VariableScope& scope,
                                    const std::vector<std::string>& which) {
  Resolution out;
  Resolver resolver(scope, out);
  for (const auto& name : which) {
    const ServiceVariables* svc = resolver.FindService(name);
    if (svc == nullptr) return NotFound("no service \"" + name + "\" to resolve variables of");
    std::vector<std::string> missing;
    for (const auto& req : svc->required) {
      if (!resolver.Visible(name, req)) missing.push_back(req);
    }
    if (!missing.empty()) {
      std::string list;
      for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      return InvalidArgument("service \"" + name + "\" needs variable" +
                             (missing.size() > 1 ? "s " : " ") + list +
                             ": set them with `slipway variables set " + missing.front() +
                             "=... --service " + name + "`");
    }
    std::set<std::string> keys;
    for (const auto* layer : {&scope.shared_config, &scope.shared_user, &svc->config, &svc->user}) {
      for (const auto& [k, v] : *layer) keys.insert(k);
    }
    ResolvedVariables& resolved = out.services[name];
    for (const auto& key : keys) {
      ASSIGN_OR_RETURN(Value v, resolver.Resolve(name, key));
      resolved.values[key] = v.text;
      if (v.secret) resolved.secret.insert(key);
    }
  }
  return out;
}

}  // namespace slipway
