#pragma once

// Secrets: encryption of variable values at rest, masking of secret values in text the
// platform writes, and generation of random secret values.
//
// The key is <data dir>/secret.key: 32 random bytes (libsodium crypto_secretbox), mode
// 0600, made at the first start. Every value is sealed with its own random nonce and
// authenticated: a value sealed with another key, or altered, does not open.
//
// Thread-safety: a SecretBox and a Masker are immutable once made; any number of
// threads may use them at once. MaskingLineBuffer is not thread-safe.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace slipway {

// Values shorter than this are not masked: masking "1" or "yes" would garble every log
// line without hiding anything worth hiding.
inline constexpr size_t kMinMaskedLength = 4;

class SecretBox {
 public:
  // Reads <home>/secret.key, creating it (32 random bytes, mode 0600) when missing.
  // kFailedPrecondition, naming the file and the fix, when it does not hold exactly
  // 32 bytes or when its group or others may read or write it.
  static Result<std::shared_ptr<const SecretBox>> LoadOrCreate(const std::string& home);
  // A box with a key of its own, for tests and for engines made without a data dir.
  static std::shared_ptr<const SecretBox> Ephemeral();
  // A box with exactly this key (32 bytes), for tests.
  static Result<std::shared_ptr<const SecretBox>> FromKey(std::string_view key);

  // Encrypts `plain`: base64 (URL-safe, no padding) of nonce || ciphertext || tag.
  std::string Seal(std::string_view plain) const;
  // Decrypts what Seal made. kInvalidArgument when it is not a sealed value or was made
  // with another key or altered ("sealed value does not open: wrong secret.key or
  // tampered data").
  Result<std::string> Open(std::string_view sealed) const;

 private:
  SecretBox() = default;
  std::string key_;  // 32 bytes
};

// Replaces every occurrence of any of its secrets (kMinMaskedLength bytes or more) by
// "***".
class Masker {
 public:
  Masker() = default;
  explicit Masker(std::vector<std::string> secrets);

  std::string Mask(std::string_view text) const;
  bool empty() const { return secrets_.empty(); }
  // Length of the longest secret (0 when empty).
  size_t longest() const { return secrets_.empty() ? 0 : secrets_.front().size(); }
  // [begin, end) of the first occurrence of a secret that starts before `pos` and ends
  // after it, or {pos, pos} when none straddles `pos`.
  std::pair<size_t, size_t> Straddling(std::string_view text, size_t pos) const;

 private:
  std::vector<std::string> secrets_;  // longest first, so a longer secret wins
};

// Turns a byte stream (an app's output, arriving in chunks of any size) into masked
// lines: a secret split across chunks is still masked. A line longer than `max_line`
// bytes is cut into several, never inside a secret.
class MaskingLineBuffer {
 public:
  MaskingLineBuffer(std::shared_ptr<const Masker> masker, size_t max_line,
                    std::function<void(std::string_view line)> on_line);
  void Add(std::string_view data);
  // Emits what is left (a last line without its newline).
  void Finish();

 private:
  void Emit(std::string_view line);
  std::shared_ptr<const Masker> masker_;
  size_t max_line_;
  std::function<void(std::string_view)> on_line_;
  std::string pending_;
};

// A random value of `length` characters drawn uniformly (libsodium randombytes) from
// `alphabet` (default: letters and digits). kInvalidArgument for a length outside
// 1..4096 or an alphabet of fewer than 2 or more than 256 characters.
Result<std::string> GenerateSecret(int length, std::string_view alphabet = "");

}  // namespace slipway
