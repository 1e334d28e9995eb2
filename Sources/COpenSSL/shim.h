#ifndef DMANOEL_COPENSSL_SHIM_H
#define DMANOEL_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/core_names.h>
#include <openssl/ssl.h>
#endif
