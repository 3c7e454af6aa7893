#include "proxy/tls_server.h"

#include <spdlog/spdlog.h>

#include <string>

namespace slipway::proxy {

namespace ssl = boost::asio::ssl;

namespace {

int HolderIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int OnServerName(SSL* ssl, int* alert, void* arg) {
  auto* provider = static_cast<TlsContextProvider*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::string lower = name ? name : "";
  for (auto& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!lower.empty() && lower.back() == '.') lower.pop_back();
  std::shared_ptr<ssl::context> context = provider->ContextFor(lower);
  if (!context) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  if (SSL_set_SSL_CTX(ssl, context->native_handle()) == nullptr) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  if (auto* holder =
          static_cast<std::shared_ptr<ssl::context>*>(SSL_get_ex_data(ssl, HolderIndex()))) {
    *holder = std::move(context);
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::unique_ptr<ssl::context> MakeSniContext(TlsContextProvider* provider) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_tlsext_servername_callback(native, OnServerName);
  SSL_CTX_set_tlsext_servername_arg(native, provider);
  HolderIndex();  // allocate the ex_data index before threads race for it
  return context;
}

void SetChosenContextHolder(SSL* ssl, std::shared_ptr<ssl::context>* holder) {
  SSL_set_ex_data(ssl, HolderIndex(), holder);
}

}  // namespace slipway::proxy
