#include "secrets/secrets.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/fs.h"

namespace slipway {

namespace {

constexpr const char* kMask = "***";
constexpr int kBase64Variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

Status InitSodium() {
  if (sodium_init() < 0) return Internal("libsodium could not be initialised");
  return Status::Ok();
}

}  // namespace

// ---- SecretBox ----------------------------------------------------------------

Result<std::shared_ptr<const SecretBox>> SecretBox::LoadOrCreate(const std::string& home) {
  RETURN_IF_ERROR(InitSodium());
  const std::string path = home + "/secret.key";
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(path, errno);
    std::string key(crypto_secretbox_KEYBYTES, '\0');
    randombytes_buf(key.data(), key.size());
    RETURN_IF_ERROR(WriteFileAtomic(path, key, 0600));
    return FromKey(key);
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return FailedPrecondition(path + " has mode " + mode +
                              ": the key that encrypts your secrets must be readable by its "
                              "owner only; run `chmod 600 " +
                              path + "` and start again");
  }
  ASSIGN_OR_RETURN(std::string key, ReadFile(path));
  if (key.size() != crypto_secretbox_KEYBYTES) {
    return FailedPrecondition(path + " holds " + std::to_string(key.size()) + " bytes, not " +
                              std::to_string(crypto_secretbox_KEYBYTES) +
                              ": it is not a Slipway secret key; restore it from a backup (the "
                              "secrets stored in state.db cannot be read without it)");
  }
  return FromKey(key);
}

std::shared_ptr<const SecretBox> SecretBox::Ephemeral() {
  (void)InitSodium();
  std::string key(crypto_secretbox_KEYBYTES, '\0');
  randombytes_buf(key.data(), key.size());
  auto box = std::shared_ptr<SecretBox>(new SecretBox());
  box->key_ = std::move(key);
  return box;
}

Result<std::shared_ptr<const SecretBox>> SecretBox::FromKey(std::string_view key) {
  RETURN_IF_ERROR(InitSodium());
  if (key.size() != crypto_secretbox_KEYBYTES) {
    return InvalidArgument("a secret key has " + std::to_string(crypto_secretbox_KEYBYTES) +
                           " bytes");
  }
  auto box = std::shared_ptr<SecretBox>(new SecretBox());
  box->key_ = std::string(key);
  return std::shared_ptr<const SecretBox>(std::move(box));
}

std::string SecretBox::Seal(std::string_view plain) const {
  std::string raw(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(raw.data());
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const unsigned char*>(plain.data()), plain.size(), nonce,
                        reinterpret_cast<const unsigned char*>(key_.data()));
  std::string out(sodium_base64_ENCODED_LEN(raw.size(), kBase64Variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                    raw.size(), kBase64Variant);
  out.resize(std::strlen(out.c_str()));
  sodium_memzero(raw.data(), raw.size());
  return out;
}

Result<std::string> SecretBox::Open(std::string_view sealed) const {
  const Status bad =
      InvalidArgument("sealed value does not open: wrong secret.key or tampered data");
  std::string raw(sealed.size(), '\0');
  size_t raw_len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(raw.data()), raw.size(), sealed.data(),
                        sealed.size(), nullptr, &raw_len, nullptr, kBase64Variant) != 0 ||
      raw_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    return bad;
  }
  const auto* nonce = reinterpret_cast<const unsigned char*>(raw.data());
  const size_t cipher_len = raw_len - crypto_secretbox_NONCEBYTES;
  std::string plain(cipher_len - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()),
                                 nonce + crypto_secretbox_NONCEBYTES, cipher_len, nonce,
                                 reinterpret_cast<const unsigned char*>(key_.data())) != 0) {
    return bad;
  }
  return plain;
}

// ---- Masker -------------------------------------------------------------------

Masker::Masker(std::vector<std::string> secrets) {
  for (auto& s : secrets) {
    if (s.size() >= kMinMaskedLength) secrets_.push_back(std::move(s));
  }
  std::sort(secrets_.begin(), secrets_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  secrets_.erase(std::unique(secrets_.begin(), secrets_.end()), secrets_.end());
}

std::string Masker::Mask(std::string_view text) const {
  if (secrets_.empty() || text.size() < kMinMaskedLength) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t matched = 0;
    for (const auto& s : secrets_) {
      if (s.size() <= text.size() - i && text.compare(i, s.size(), s) == 0) {
        matched = s.size();
        break;
      }
    }
    if (matched > 0) {
      out += kMask;
      i += matched;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::pair<size_t, size_t> Masker::Straddling(std::string_view text, size_t pos) const {
  for (const auto& s : secrets_) {
    size_t from = pos >= s.size() ? pos - s.size() + 1 : 0;
    size_t at = text.find(s, from);
    if (at != std::string_view::npos && at < pos && at + s.size() > pos) {
      return {at, at + s.size()};
    }
  }
  return {pos, pos};
}

// ---- MaskingLineBuffer --------------------------------------------------------

MaskingLineBuffer::MaskingLineBuffer(std::shared_ptr<const Masker> masker, size_t max_line,
                                     std::function<void(std::string_view)> on_line)
    : masker_(std::move(masker)), max_line_(max_line), on_line_(std::move(on_line)) {}

void MaskingLineBuffer::Emit(std::string_view line) {
  if (masker_ && !masker_->empty()) {
    on_line_(masker_->Mask(line));
  } else {
    on_line_(line);
  }
}

void MaskingLineBuffer::Add(std::string_view data) {
  pending_.append(data);
  size_t start = 0;
  for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
    Emit(std::string_view(pending_).substr(start, nl - start));
  }
  pending_.erase(0, start);
  // A line without its end yet: cut it once enough follows the cut to see any secret
  // straddling it, and move the cut past such a secret.
  const size_t lookahead = masker_ ? masker_->longest() : 0;
  while (pending_.size() >= max_line_ + lookahead && pending_.size() > 0) {
    size_t cut = std::max<size_t>(1, max_line_);
    if (masker_ && !masker_->empty()) cut = masker_->Straddling(pending_, cut).second;
    Emit(std::string_view(pending_).substr(0, cut));
    pending_.erase(0, cut);
  }
}

void MaskingLineBuffer::Finish() {
  if (!pending_.empty()) Emit(pending_);
  pending_.clear();
}

// ---- generated values ---------------------------------------------------------

Result<std::string> GenerateSecret(int length, std::string_view alphabet) {
  RETURN_IF_ERROR(InitSodium());
  if (alphabet.empty()) alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  if (length < 1 || length > 4096) {
    return InvalidArgument("secret(" + std::to_string(length) +
                           "): the length must be from 1 to 4096");
  }
  if (alphabet.size() < 2 || alphabet.size() > 256) {
    return InvalidArgument("secret(): the alphabet must have from 2 to 256 characters");
  }
  std::string out;
  out.reserve(static_cast<size_t>(length));
  for (int i = 0; i < length; ++i) {
    out += alphabet[randombytes_uniform(static_cast<uint32_t>(alphabet.size()))];
  }
  return out;
}

}  // namespace slipway
