/*
 * A PKCS#11 client in C for the interposer's tests: what pkcs11js cannot do (a NULL size query,
 * multi-part encryption) from a separate process configured by the environment alone.
 * Usage: probe <module> <token label> <pin> <iv bytes: 0 = host IV, 12, 16>
 * Prints key=value lines; exit 0 when every step ran (the values say whether they were right).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

static CK_FUNCTION_LIST *F;

#define CHECK(call)                                                                                \
  do {                                                                                             \
    CK_RV rv_ = (call);                                                                            \
    if (rv_ != CKR_OK) {                                                                           \
      printf("error=%s rv=0x%lx\n", #call, (unsigned long)rv_);                                    \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 5) return 2;
  const char *label = argv[2], *pin = argv[3];
  CK_ULONG ivlen = strtoul(argv[4], NULL, 10);
  void *h = dlopen(argv[1], RTLD_NOW);
  if (!h) {
    printf("error=dlopen %s\n", dlerror());
    return 1;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
  CHECK(get(&F));
  CHECK(F->C_Initialize(NULL));
  CK_SLOT_ID slots[64];
  CK_ULONG n = 64;
  CHECK(F->C_GetSlotList(CK_TRUE, slots, &n));
  CK_SLOT_ID slot = 0;
  int found = 0;
  for (CK_ULONG i = 0; i < n && !found; i++) {
    CK_TOKEN_INFO ti;
    CHECK(F->C_GetTokenInfo(slots[i], &ti));
    char l[33];
    memcpy(l, ti.label, 32);
    l[32] = 0;
    for (int k = 31; k >= 0 && l[k] == ' '; k--) l[k] = 0;
    if (!strcmp(l, label)) slot = slots[i], found = 1;
  }
  if (!found) {
    printf("error=token not found\n");
    return 1;
  }
  CK_SESSION_HANDLE s;
  CHECK(F->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
  CHECK(F->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE kt = CKK_AES;
  CK_ULONG klen = 32;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE tpl[] = {{CKA_CLASS, &cls, sizeof cls},   {CKA_KEY_TYPE, &kt, sizeof kt},
                        {CKA_VALUE_LEN, &klen, sizeof klen}, {CKA_TOKEN, &no, sizeof no},
                        {CKA_ENCRYPT, &yes, sizeof yes}, {CKA_DECRYPT, &yes, sizeof yes}};
  CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
  CK_OBJECT_HANDLE key;
  CHECK(F->C_GenerateKey(s, &gen, tpl, 6, &key));

  unsigned char data[] = "probe data 0123456789";
  CK_ULONG dlen = sizeof data - 1;
  unsigned char iv[16] = {0};
  CK_ULONG use_iv = ivlen ? ivlen : 12;
  if (!ivlen) memcpy(iv, "host-iv-0123", 12);
  CK_GCM_PARAMS p = {iv, use_iv, use_iv * 8, NULL, 0, 128};
  CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p};

  /* Single part: a size query, then the call. */
  CK_ULONG size = 0;
  CHECK(F->C_EncryptInit(s, &m, key));
  CHECK(F->C_Encrypt(s, data, dlen, NULL, &size));
  printf("size=%lu\n", (unsigned long)size);
  unsigned char out[256];
  CK_ULONG len = sizeof out;
  CHECK(F->C_Encrypt(s, data, dlen, out, &len));
  printf("len=%lu\n", (unsigned long)len);
  unsigned char div[16];
  CK_ULONG ctlen = ivlen ? len - ivlen : len;
  if (ivlen) memcpy(div, out + ctlen, ivlen);
  else memcpy(div, iv, 12);
  CK_GCM_PARAMS dp = {div, use_iv, use_iv * 8, NULL, 0, 128};
  CK_MECHANISM dm = {CKM_AES_GCM, &dp, sizeof dp};
  unsigned char plain[256];
  CK_ULONG plen = sizeof plain;
  CHECK(F->C_DecryptInit(s, &dm, key));
  CHECK(F->C_Decrypt(s, out, ctlen, plain, &plen));
  printf("single=%s\n", plen == dlen && !memcmp(plain, data, dlen) ? "ok" : "wrong");

  /* Multi-part: update, a size query on final, final. */
  CK_ULONG l1 = sizeof out, l2 = 0;
  CHECK(F->C_EncryptInit(s, &m, key));
  CHECK(F->C_EncryptUpdate(s, data, dlen, out, &l1));
  CHECK(F->C_EncryptFinal(s, NULL, &l2));
  printf("final_size=%lu\n", (unsigned long)l2);
  l2 = sizeof out - l1;
  CHECK(F->C_EncryptFinal(s, out + l1, &l2));
  len = l1 + l2;
  printf("multi_len=%lu\n", (unsigned long)len);
  ctlen = ivlen ? len - ivlen : len;
  if (ivlen) memcpy(div, out + ctlen, ivlen);
  plen = sizeof plain;
  CHECK(F->C_DecryptInit(s, &dm, key));
  CHECK(F->C_Decrypt(s, out, ctlen, plain, &plen));
  printf("multi=%s\n", plen == dlen && !memcmp(plain, data, dlen) ? "ok" : "wrong");

  F->C_CloseSession(s);
  F->C_Finalize(NULL);
  return 0;
}
