/*
 * keygate PKCS#11 fault and quirk interposer (a TEST TOOL, never shipped in an image).
 *
 * A PKCS#11 module that dlopens the real module (SoftHSM2) and forwards every call to it, and,
 * driven by a control file that it re-reads whenever the file changes, can:
 *   - emulate the GCM IV conventions of a Luna HSM in FIPS mode (16-byte IV generated inside,
 *     appended to the ciphertext) and of AWS CloudHSM (12-byte IV, appended);
 *   - return any CKR_* from any function, for N calls or until a time, before or after the real call;
 *   - add latency to a function, or hang it until the control file changes (or max_ms passes);
 *   - hide every object from C_FindObjects for a while (an HA failover).
 * Build: gcc -shared -fPIC -O2 -std=gnu11 -fvisibility=hidden -I<pkcs11 headers> interposer.c -ldl -lpthread
 * gateway/src/testing/pkcs11-interposer.ts builds, configures and drives it; docs/development.md.
 *
 * Configuration, first found wins: a file named <this module's path>.conf with lines
 * `target=<real module>`, `control=<control file>`, `events=<events file>`; else the environment:
 * KEYGATE_INTERPOSER_TARGET, KEYGATE_INTERPOSER_CONTROL, KEYGATE_INTERPOSER_EVENTS.
 *
 * CK_GCM_PARAMS.ulIvBits is ignored unless `gcm-iv-bits strict` (pkcs11js leaves it unset for
 * CK_PARAMS_AES_GCM; CK_PARAMS_GCM and CK_PARAMS_AES_GCM_v240 set it).
 *
 * Control file (UTF-8 lines; `#` comments; the whole file replaces the previous rules, and counts
 * and windows restart when it is re-read):
 *   gcm host|luna-fips|cloudhsm
 *   gcm-iv-bits ignore|strict   (strict: CKM_AES_GCM params with ulIvBits != ulIvLen * 8 are refused)
 *   fail  <fns> <rv>  [count=N] [skip=N] [until=<epoch ms>] [for_ms=N] [when=before|after]
 *   delay <fns> <ms>  [count=N] [skip=N] [until=<epoch ms>] [for_ms=N]
 *   hang  <fns>       [count=N] [skip=N] [until=<epoch ms>] [for_ms=N] [max_ms=N]   (max_ms: 300000)
 *   hide              [count=N] [skip=N] [until=<epoch ms>] [for_ms=N]   (C_FindObjects finds nothing)
 * <fns> is C_Name[,C_Name...] or `*` (every function but C_Finalize); <rv> a number (0x30 or 48).
 * count: matching calls the rule applies to (default: all), after letting `skip` matching calls
 * through; for_ms counts from the re-read. Counts are per process.
 * when=before returns without calling the real module; after (the default for the single-part and
 * Final crypto calls, so that the module's operation ends as on a real failure) calls it and then
 * returns <rv>. Events (one line per injected fault, delay, hang, hide, GCM emulation, control
 * error) are appended to the events file when one is configured.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

#define EXPORT __attribute__((visibility("default")))

enum { ACT_NONE = 0, ACT_BEFORE = 1, ACT_AFTER = 2 };
enum { GCM_HOST = 0, GCM_LUNA_FIPS = 1, GCM_CLOUDHSM = 2 };

static CK_FUNCTION_LIST *T; /* the real module's function list */

static int pre_call(int fn, CK_RV *inj);
static CK_RV impl_C_Finalize(CK_VOID_PTR pReserved);
static CK_RV impl_C_CloseSession(CK_SESSION_HANDLE hSession);
static CK_RV impl_C_CloseAllSessions(CK_SLOT_ID slotID);
static CK_RV impl_C_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
static CK_RV impl_C_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                            CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen);
static CK_RV impl_C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
static CK_RV impl_C_EncryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,
                                 CK_ULONG_PTR pulLastEncryptedPartLen);
static CK_RV impl_C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                                CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount);
EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);

/* Generated from pkcs11f.h (PKCS#11 v2.40 order) by a small script; one entry per function. */
enum fn_id {
  FN_C_Initialize,
  FN_C_Finalize,
  FN_C_GetInfo,
  FN_C_GetFunctionList,
  FN_C_GetSlotList,
  FN_C_GetSlotInfo,
  FN_C_GetTokenInfo,
  FN_C_GetMechanismList,
  FN_C_GetMechanismInfo,
  FN_C_InitToken,
  FN_C_InitPIN,
  FN_C_SetPIN,
  FN_C_OpenSession,
  FN_C_CloseSession,
  FN_C_CloseAllSessions,
  FN_C_GetSessionInfo,
  FN_C_GetOperationState,
  FN_C_SetOperationState,
  FN_C_Login,
  FN_C_Logout,
  FN_C_CreateObject,
  FN_C_CopyObject,
  FN_C_DestroyObject,
  FN_C_GetObjectSize,
  FN_C_GetAttributeValue,
  FN_C_SetAttributeValue,
  FN_C_FindObjectsInit,
  FN_C_FindObjects,
  FN_C_FindObjectsFinal,
  FN_C_EncryptInit,
  FN_C_Encrypt,
  FN_C_EncryptUpdate,
  FN_C_EncryptFinal,
  FN_C_DecryptInit,
  FN_C_Decrypt,
  FN_C_DecryptUpdate,
  FN_C_DecryptFinal,
  FN_C_DigestInit,
  FN_C_Digest,
  FN_C_DigestUpdate,
  FN_C_DigestKey,
  FN_C_DigestFinal,
  FN_C_SignInit,
  FN_C_Sign,
  FN_C_SignUpdate,
  FN_C_SignFinal,
  FN_C_SignRecoverInit,
  FN_C_SignRecover,
  FN_C_VerifyInit,
  FN_C_Verify,
  FN_C_VerifyUpdate,
  FN_C_VerifyFinal,
  FN_C_VerifyRecoverInit,
  FN_C_VerifyRecover,
  FN_C_DigestEncryptUpdate,
  FN_C_DecryptDigestUpdate,
  FN_C_SignEncryptUpdate,
  FN_C_DecryptVerifyUpdate,
  FN_C_GenerateKey,
  FN_C_GenerateKeyPair,
  FN_C_WrapKey,
  FN_C_UnwrapKey,
  FN_C_DeriveKey,
  FN_C_SeedRandom,
  FN_C_GenerateRandom,
  FN_C_GetFunctionStatus,
  FN_C_CancelFunction,
  FN_C_WaitForSlotEvent,
  FN_COUNT
};

static const char *const fn_names[FN_COUNT] = {
  "C_Initialize",
  "C_Finalize",
  "C_GetInfo",
  "C_GetFunctionList",
  "C_GetSlotList",
  "C_GetSlotInfo",
  "C_GetTokenInfo",
  "C_GetMechanismList",
  "C_GetMechanismInfo",
  "C_InitToken",
  "C_InitPIN",
  "C_SetPIN",
  "C_OpenSession",
  "C_CloseSession",
  "C_CloseAllSessions",
  "C_GetSessionInfo",
  "C_GetOperationState",
  "C_SetOperationState",
  "C_Login",
  "C_Logout",
  "C_CreateObject",
  "C_CopyObject",
  "C_DestroyObject",
  "C_GetObjectSize",
  "C_GetAttributeValue",
  "C_SetAttributeValue",
  "C_FindObjectsInit",
  "C_FindObjects",
  "C_FindObjectsFinal",
  "C_EncryptInit",
  "C_Encrypt",
  "C_EncryptUpdate",
  "C_EncryptFinal",
  "C_DecryptInit",
  "C_Decrypt",
  "C_DecryptUpdate",
  "C_DecryptFinal",
  "C_DigestInit",
  "C_Digest",
  "C_DigestUpdate",
  "C_DigestKey",
  "C_DigestFinal",
  "C_SignInit",
  "C_Sign",
  "C_SignUpdate",
  "C_SignFinal",
  "C_SignRecoverInit",
  "C_SignRecover",
  "C_VerifyInit",
  "C_Verify",
  "C_VerifyUpdate",
  "C_VerifyFinal",
  "C_VerifyRecoverInit",
  "C_VerifyRecover",
  "C_DigestEncryptUpdate",
  "C_DecryptDigestUpdate",
  "C_SignEncryptUpdate",
  "C_DecryptVerifyUpdate",
  "C_GenerateKey",
  "C_GenerateKeyPair",
  "C_WrapKey",
  "C_UnwrapKey",
  "C_DeriveKey",
  "C_SeedRandom",
  "C_GenerateRandom",
  "C_GetFunctionStatus",
  "C_CancelFunction",
  "C_WaitForSlotEvent",
};

static CK_RV W_C_Initialize(CK_VOID_PTR pInitArgs) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Initialize, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_Initialize(pInitArgs);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Finalize(CK_VOID_PTR pReserved) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Finalize, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_Finalize(pReserved);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetInfo(CK_INFO_PTR pInfo) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetInfo, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetInfo(pInfo);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetSlotList, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetSlotList(tokenPresent, pSlotList, pulCount);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetSlotInfo, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetSlotInfo(slotID, pInfo);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetTokenInfo, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetTokenInfo(slotID, pInfo);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetMechanismList, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetMechanismList(slotID, pMechanismList, pulCount);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetMechanismInfo, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetMechanismInfo(slotID, type, pInfo);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_InitToken, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_InitToken(slotID, pPin, ulPinLen, pLabel);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_InitPIN, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_InitPIN(hSession, pPin, ulPinLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SetPIN, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SetPIN(hSession, pOldPin, ulOldLen, pNewPin, ulNewLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_OpenSession, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_OpenSession(slotID, flags, pApplication, Notify, phSession);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_CloseSession(CK_SESSION_HANDLE hSession) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_CloseSession, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_CloseSession(hSession);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_CloseAllSessions(CK_SLOT_ID slotID) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_CloseAllSessions, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_CloseAllSessions(slotID);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetSessionInfo, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetSessionInfo(hSession, pInfo);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetOperationState, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetOperationState(hSession, pOperationState, pulOperationStateLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen, CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SetOperationState, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SetOperationState(hSession, pOperationState, ulOperationStateLen, hEncryptionKey, hAuthenticationKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Login, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_Login(hSession, userType, pPin, ulPinLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Logout(CK_SESSION_HANDLE hSession) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Logout, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_Logout(hSession);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_CreateObject, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_CreateObject(hSession, pTemplate, ulCount, phObject);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_CopyObject, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_CopyObject(hSession, hObject, pTemplate, ulCount, phNewObject);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DestroyObject, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DestroyObject(hSession, hObject);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetObjectSize, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetObjectSize(hSession, hObject, pulSize);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetAttributeValue, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetAttributeValue(hSession, hObject, pTemplate, ulCount);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SetAttributeValue, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SetAttributeValue(hSession, hObject, pTemplate, ulCount);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_FindObjectsInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_FindObjectsInit(hSession, pTemplate, ulCount);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_FindObjects, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_FindObjects(hSession, phObject, ulMaxObjectCount, pulObjectCount);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_FindObjectsFinal(CK_SESSION_HANDLE hSession) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_FindObjectsFinal, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_FindObjectsFinal(hSession);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_EncryptInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_EncryptInit(hSession, pMechanism, hKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Encrypt, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_Encrypt(hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_EncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_EncryptUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_EncryptUpdate(hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_EncryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart, CK_ULONG_PTR pulLastEncryptedPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_EncryptFinal, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_EncryptFinal(hSession, pLastEncryptedPart, pulLastEncryptedPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DecryptInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = impl_C_DecryptInit(hSession, pMechanism, hKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Decrypt, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_Decrypt(hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DecryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DecryptUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DecryptUpdate(hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DecryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DecryptFinal, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DecryptFinal(hSession, pLastPart, pulLastPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DigestInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DigestInit(hSession, pMechanism);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Digest, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_Digest(hSession, pData, ulDataLen, pDigest, pulDigestLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DigestUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DigestUpdate(hSession, pPart, ulPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DigestKey, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DigestKey(hSession, hKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DigestFinal, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DigestFinal(hSession, pDigest, pulDigestLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SignInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SignInit(hSession, pMechanism, hKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Sign, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_Sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SignUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SignUpdate(hSession, pPart, ulPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SignFinal, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SignFinal(hSession, pSignature, pulSignatureLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SignRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SignRecoverInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SignRecoverInit(hSession, pMechanism, hKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SignRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SignRecover, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SignRecover(hSession, pData, ulDataLen, pSignature, pulSignatureLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_VerifyInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_VerifyInit(hSession, pMechanism, hKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_Verify, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_Verify(hSession, pData, ulDataLen, pSignature, ulSignatureLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_VerifyUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_VerifyUpdate(hSession, pPart, ulPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_VerifyFinal, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_VerifyFinal(hSession, pSignature, ulSignatureLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_VerifyRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_VerifyRecoverInit, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_VerifyRecoverInit(hSession, pMechanism, hKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_VerifyRecover, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_VerifyRecover(hSession, pSignature, ulSignatureLen, pData, pulDataLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DigestEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DigestEncryptUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DigestEncryptUpdate(hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DecryptDigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DecryptDigestUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DecryptDigestUpdate(hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SignEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SignEncryptUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SignEncryptUpdate(hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DecryptVerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DecryptVerifyUpdate, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DecryptVerifyUpdate(hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GenerateKey, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GenerateKey(hSession, pMechanism, pTemplate, ulCount, phKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount, CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount, CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GenerateKeyPair, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GenerateKeyPair(hSession, pMechanism, pPublicKeyTemplate, ulPublicKeyAttributeCount, pPrivateKeyTemplate, ulPrivateKeyAttributeCount, phPublicKey, phPrivateKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_WrapKey, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_WrapKey(hSession, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_UnwrapKey, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_UnwrapKey(hSession, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulAttributeCount, phKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_DeriveKey, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_DeriveKey(hSession, pMechanism, hBaseKey, pTemplate, ulAttributeCount, phKey);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_SeedRandom, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_SeedRandom(hSession, pSeed, ulSeedLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GenerateRandom, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GenerateRandom(hSession, RandomData, ulRandomLen);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_GetFunctionStatus(CK_SESSION_HANDLE hSession) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_GetFunctionStatus, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_GetFunctionStatus(hSession);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_CancelFunction(CK_SESSION_HANDLE hSession) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_CancelFunction, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_CancelFunction(hSession);
  return act == ACT_AFTER ? inj : rv;
}

static CK_RV W_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pRserved) {
  CK_RV inj = CKR_OK;
  int act = pre_call(FN_C_WaitForSlotEvent, &inj);
  if (act == ACT_BEFORE) return inj;
  CK_RV rv = T->C_WaitForSlotEvent(flags, pSlot, pRserved);
  return act == ACT_AFTER ? inj : rv;
}

static void fill_function_list(CK_FUNCTION_LIST *f) {
  f->version.major = 2;
  f->version.minor = 40;
  f->C_Initialize = W_C_Initialize;
  f->C_Finalize = W_C_Finalize;
  f->C_GetInfo = W_C_GetInfo;
  f->C_GetFunctionList = C_GetFunctionList;
  f->C_GetSlotList = W_C_GetSlotList;
  f->C_GetSlotInfo = W_C_GetSlotInfo;
  f->C_GetTokenInfo = W_C_GetTokenInfo;
  f->C_GetMechanismList = W_C_GetMechanismList;
  f->C_GetMechanismInfo = W_C_GetMechanismInfo;
  f->C_InitToken = W_C_InitToken;
  f->C_InitPIN = W_C_InitPIN;
  f->C_SetPIN = W_C_SetPIN;
  f->C_OpenSession = W_C_OpenSession;
  f->C_CloseSession = W_C_CloseSession;
  f->C_CloseAllSessions = W_C_CloseAllSessions;
  f->C_GetSessionInfo = W_C_GetSessionInfo;
  f->C_GetOperationState = W_C_GetOperationState;
  f->C_SetOperationState = W_C_SetOperationState;
  f->C_Login = W_C_Login;
  f->C_Logout = W_C_Logout;
  f->C_CreateObject = W_C_CreateObject;
  f->C_CopyObject = W_C_CopyObject;
  f->C_DestroyObject = W_C_DestroyObject;
  f->C_GetObjectSize = W_C_GetObjectSize;
  f->C_GetAttributeValue = W_C_GetAttributeValue;
  f->C_SetAttributeValue = W_C_SetAttributeValue;
  f->C_FindObjectsInit = W_C_FindObjectsInit;
  f->C_FindObjects = W_C_FindObjects;
  f->C_FindObjectsFinal = W_C_FindObjectsFinal;
  f->C_EncryptInit = W_C_EncryptInit;
  f->C_Encrypt = W_C_Encrypt;
  f->C_EncryptUpdate = W_C_EncryptUpdate;
  f->C_EncryptFinal = W_C_EncryptFinal;
  f->C_DecryptInit = W_C_DecryptInit;
  f->C_Decrypt = W_C_Decrypt;
  f->C_DecryptUpdate = W_C_DecryptUpdate;
  f->C_DecryptFinal = W_C_DecryptFinal;
  f->C_DigestInit = W_C_DigestInit;
  f->C_Digest = W_C_Digest;
  f->C_DigestUpdate = W_C_DigestUpdate;
  f->C_DigestKey = W_C_DigestKey;
  f->C_DigestFinal = W_C_DigestFinal;
  f->C_SignInit = W_C_SignInit;
  f->C_Sign = W_C_Sign;
  f->C_SignUpdate = W_C_SignUpdate;
  f->C_SignFinal = W_C_SignFinal;
  f->C_SignRecoverInit = W_C_SignRecoverInit;
  f->C_SignRecover = W_C_SignRecover;
  f->C_VerifyInit = W_C_VerifyInit;
  f->C_Verify = W_C_Verify;
  f->C_VerifyUpdate = W_C_VerifyUpdate;
  f->C_VerifyFinal = W_C_VerifyFinal;
  f->C_VerifyRecoverInit = W_C_VerifyRecoverInit;
  f->C_VerifyRecover = W_C_VerifyRecover;
  f->C_DigestEncryptUpdate = W_C_DigestEncryptUpdate;
  f->C_DecryptDigestUpdate = W_C_DecryptDigestUpdate;
  f->C_SignEncryptUpdate = W_C_SignEncryptUpdate;
  f->C_DecryptVerifyUpdate = W_C_DecryptVerifyUpdate;
  f->C_GenerateKey = W_C_GenerateKey;
  f->C_GenerateKeyPair = W_C_GenerateKeyPair;
  f->C_WrapKey = W_C_WrapKey;
  f->C_UnwrapKey = W_C_UnwrapKey;
  f->C_DeriveKey = W_C_DeriveKey;
  f->C_SeedRandom = W_C_SeedRandom;
  f->C_GenerateRandom = W_C_GenerateRandom;
  f->C_GetFunctionStatus = W_C_GetFunctionStatus;
  f->C_CancelFunction = W_C_CancelFunction;
  f->C_WaitForSlotEvent = W_C_WaitForSlotEvent;
}

/* ------------------------------------------------------------------------------------------ */
/* Configuration and the real module                                                           */

static char target_path[4096];
static char control_path[4096];
static char events_path[4096];
static CK_FUNCTION_LIST own_list;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static CK_RV load_rv = CKR_GENERAL_ERROR;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  while (n > 0 && (src[n - 1] == '\n' || src[n - 1] == '\r' || src[n - 1] == ' ')) n--;
  if (n >= cap) n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = 0;
}

static void read_sidecar(void) {
  Dl_info info;
  if (!dladdr((void *)C_GetFunctionList, &info) || !info.dli_fname) return;
  char conf[4200];
  snprintf(conf, sizeof conf, "%s.conf", info.dli_fname);
  FILE *f = fopen(conf, "r");
  if (!f) return;
  char line[4200];
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "target=", 7)) copy_str(target_path, sizeof target_path, line + 7);
    else if (!strncmp(line, "control=", 8)) copy_str(control_path, sizeof control_path, line + 8);
    else if (!strncmp(line, "events=", 7)) copy_str(events_path, sizeof events_path, line + 7);
  }
  fclose(f);
}

static void load_target(void) {
  read_sidecar();
  const char *e;
  if (!target_path[0] && (e = getenv("KEYGATE_INTERPOSER_TARGET"))) copy_str(target_path, sizeof target_path, e);
  if (!control_path[0] && (e = getenv("KEYGATE_INTERPOSER_CONTROL"))) copy_str(control_path, sizeof control_path, e);
  if (!events_path[0] && (e = getenv("KEYGATE_INTERPOSER_EVENTS"))) copy_str(events_path, sizeof events_path, e);
  if (!target_path[0]) {
    fprintf(stderr, "keygate-interposer: no target module (KEYGATE_INTERPOSER_TARGET)\n");
    return;
  }
  void *h = dlopen(target_path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "keygate-interposer: cannot load %s: %s\n", target_path, dlerror());
    return;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
  if (!get || get(&T) != CKR_OK || !T) {
    fprintf(stderr, "keygate-interposer: %s has no usable C_GetFunctionList\n", target_path);
    T = NULL;
    return;
  }
  fill_function_list(&own_list);
  load_rv = CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
  if (!ppFunctionList) return CKR_ARGUMENTS_BAD;
  pthread_once(&load_once, load_target);
  if (load_rv != CKR_OK) return load_rv;
  *ppFunctionList = &own_list;
  return CKR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Time and events                                                                              */

static long long now_real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long now_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

static int events_fd = -1;

/* One line per event, appended with a single write (O_APPEND keeps lines whole across threads). */
static void event(const char *fmt, ...) {
  if (!events_path[0]) return;
  int fd = __atomic_load_n(&events_fd, __ATOMIC_ACQUIRE);
  if (fd < 0) {
    pthread_mutex_lock(&mu);
    if (events_fd < 0) {
      fd = open(events_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      __atomic_store_n(&events_fd, fd, __ATOMIC_RELEASE);
    }
    fd = events_fd;
    pthread_mutex_unlock(&mu);
    if (fd < 0) return;
  }
  char line[512];
  int n = snprintf(line, sizeof line, "%lld ", now_real_ms());
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  ssize_t w = write(fd, line, (size_t)n);
  (void)w;
}

/* ------------------------------------------------------------------------------------------ */
/* Control file                                                                                 */

enum { R_FAIL, R_DELAY, R_HANG, R_HIDE };
#define MAX_RULES 64

struct rule {
  int kind;
  unsigned char fns[FN_COUNT];
  CK_RV rv;
  int when;            /* ACT_NONE: the function's default */
  long long count;     /* matching calls left; -1: unlimited */
  long long skip;      /* matching calls to let through first */
  long long until;     /* epoch ms; 0: no end */
  long ms;             /* delay, or hang max */
};

static struct {
  int gcm;
  int strict_iv_bits; /* refuse CK_GCM_PARAMS whose ulIvBits is not ulIvLen * 8 */
  int nrules;
  struct rule rules[MAX_RULES];
  unsigned long gen; /* bumped on every re-read */
  int have;          /* a file was read */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtim;
} ctl;

static __thread int tl_hide; /* set by pre_call for the C_FindObjects call it precedes */

static int fn_by_name(const char *name) {
  for (int i = 0; i < FN_COUNT; i++)
    if (!strcmp(fn_names[i], name)) return i;
  return -1;
}

static int parse_fns(char *spec, unsigned char *fns) {
  memset(fns, 0, FN_COUNT);
  if (!strcmp(spec, "*")) {
    for (int i = 0; i < FN_COUNT; i++) fns[i] = i != FN_C_Finalize && i != FN_C_GetFunctionList;
    return 0;
  }
  char *save = NULL;
  for (char *t = strtok_r(spec, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int i = fn_by_name(t);
    if (i < 0) return -1;
    fns[i] = 1;
  }
  return 0;
}

static int parse_num(const char *s, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 0);
  if (errno || end == s || *end) return -1;
  *out = v;
  return 0;
}

/* Parses one line into ctl (called with mu held); returns -1 on a malformed line. */
static int parse_line(char *line, long long loaded_at) {
  char *argv[16];
  int argc = 0;
  char *save = NULL;
  for (char *t = strtok_r(line, " \t\r\n", &save); t && argc < 16; t = strtok_r(NULL, " \t\r\n", &save))
    argv[argc++] = t;
  if (argc == 0 || argv[0][0] == '#') return 0;
  if (!strcmp(argv[0], "gcm-iv-bits")) {
    if (argc != 2) return -1;
    if (!strcmp(argv[1], "strict")) ctl.strict_iv_bits = 1;
    else if (!strcmp(argv[1], "ignore")) ctl.strict_iv_bits = 0;
    else return -1;
    return 0;
  }
  if (!strcmp(argv[0], "gcm")) {
    if (argc != 2) return -1;
    if (!strcmp(argv[1], "host")) ctl.gcm = GCM_HOST;
    else if (!strcmp(argv[1], "luna-fips")) ctl.gcm = GCM_LUNA_FIPS;
    else if (!strcmp(argv[1], "cloudhsm")) ctl.gcm = GCM_CLOUDHSM;
    else return -1;
    return 0;
  }
  if (ctl.nrules >= MAX_RULES) return -1;
  struct rule r;
  memset(&r, 0, sizeof r);
  r.count = -1;
  int i = 1;
  if (!strcmp(argv[0], "fail")) r.kind = R_FAIL;
  else if (!strcmp(argv[0], "delay")) r.kind = R_DELAY;
  else if (!strcmp(argv[0], "hang")) r.kind = R_HANG, r.ms = 300000;
  else if (!strcmp(argv[0], "hide")) r.kind = R_HIDE;
  else return -1;
  if (r.kind == R_HIDE) {
    r.fns[FN_C_FindObjects] = 1;
  } else {
    if (argc < 2 || parse_fns(argv[1], r.fns) < 0) return -1;
    i = 2;
  }
  if (r.kind == R_FAIL || r.kind == R_DELAY) {
    long long v;
    if (argc < 3 || parse_num(argv[2], &v) < 0 || v < 0) return -1;
    if (r.kind == R_FAIL) r.rv = (CK_RV)v;
    else r.ms = (long)v;
    i = 3;
  }
  for (; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) return -1;
    *eq = 0;
    const char *k = argv[i], *val = eq + 1;
    long long v = 0;
    if (!strcmp(k, "when")) {
      if (!strcmp(val, "before")) r.when = ACT_BEFORE;
      else if (!strcmp(val, "after")) r.when = ACT_AFTER;
      else return -1;
      continue;
    }
    if (parse_num(val, &v) < 0 || v < 0) return -1;
    if (!strcmp(k, "count")) r.count = v;
    else if (!strcmp(k, "skip")) r.skip = v;
    else if (!strcmp(k, "until")) r.until = v;
    else if (!strcmp(k, "for_ms")) r.until = loaded_at + v;
    else if (!strcmp(k, "max_ms") && r.kind == R_HANG) r.ms = (long)v;
    else return -1;
  }
  ctl.rules[ctl.nrules++] = r;
  return 0;
}

/* Re-reads the control file when its identity (inode, size, mtime) changed. */
static void maybe_reload(void) {
  if (!control_path[0]) return;
  struct stat st;
  int exists = stat(control_path, &st) == 0;
  pthread_mutex_lock(&mu);
  int same = exists ? ctl.have && ctl.dev == st.st_dev && ctl.ino == st.st_ino && ctl.size == st.st_size &&
                          ctl.mtim.tv_sec == st.st_mtim.tv_sec && ctl.mtim.tv_nsec == st.st_mtim.tv_nsec
                    : !ctl.have;
  if (same) {
    pthread_mutex_unlock(&mu);
    return;
  }
  ctl.gcm = GCM_HOST;
  ctl.strict_iv_bits = 0;
  ctl.nrules = 0;
  ctl.gen++;
  ctl.have = 0;
  if (exists) {
    ctl.have = 1;
    ctl.dev = st.st_dev;
    ctl.ino = st.st_ino;
    ctl.size = st.st_size;
    ctl.mtim = st.st_mtim;
    FILE *f = fopen(control_path, "r");
    if (f) {
      char line[1024];
      int n = 0;
      long long at = now_real_ms();
      while (fgets(line, sizeof line, f)) {
        n++;
        char copy[1024];
        memcpy(copy, line, sizeof copy);
        if (parse_line(line, at) < 0) {
          copy[strcspn(copy, "\r\n")] = 0;
          fprintf(stderr, "keygate-interposer: control line %d ignored: %s\n", n, copy);
          event("control-error line=%d", n);
        }
      }
      fclose(f);
    }
  }
  unsigned long gen = ctl.gen;
  int nrules = ctl.nrules, gcm = ctl.gcm;
  pthread_mutex_unlock(&mu);
  event("control gen=%lu rules=%d gcm=%d", gen, nrules, gcm);
}

/* Whether the rule applies to this call; a rule still skipping calls counts this one down instead. */
static int rule_matches(struct rule *r, int kind, int fn, long long now) {
  if (r->kind != kind || !r->fns[fn] || r->count == 0 || (r->until != 0 && now >= r->until)) return 0;
  if (r->skip > 0) {
    r->skip--;
    return 0;
  }
  return 1;
}

static void consume(struct rule *r) {
  if (r->count > 0) r->count--;
}

static int default_when(int fn) {
  switch (fn) {
  case FN_C_Encrypt:
  case FN_C_EncryptFinal:
  case FN_C_Decrypt:
  case FN_C_DecryptFinal:
  case FN_C_Digest:
  case FN_C_DigestFinal:
  case FN_C_Sign:
  case FN_C_SignFinal:
  case FN_C_SignRecover:
  case FN_C_Verify:
  case FN_C_VerifyFinal:
  case FN_C_VerifyRecover:
    return ACT_AFTER;
  default:
    return ACT_BEFORE;
  }
}

/* Runs before every wrapped call: hang, then delay, then decide an injected return value. */
static int pre_call(int fn, CK_RV *inj) {
  maybe_reload();
  tl_hide = 0;
  long hang_max = -1;
  pthread_mutex_lock(&mu);
  long long now = now_real_ms();
  for (int i = 0; i < ctl.nrules; i++) {
    if (rule_matches(&ctl.rules[i], R_HANG, fn, now)) {
      consume(&ctl.rules[i]);
      hang_max = ctl.rules[i].ms;
      break;
    }
  }
  unsigned long gen0 = ctl.gen;
  pthread_mutex_unlock(&mu);
  if (hang_max >= 0) {
    event("hang %s begin", fn_names[fn]);
    long long start = now_mono_ms();
    int released = 0;
    while (now_mono_ms() - start < hang_max) {
      sleep_ms(10);
      maybe_reload();
      pthread_mutex_lock(&mu);
      released = ctl.gen != gen0;
      pthread_mutex_unlock(&mu);
      if (released) break;
    }
    event("hang %s end after_ms=%lld %s", fn_names[fn], now_mono_ms() - start, released ? "released" : "timeout");
  }
  long delay = 0;
  int act = ACT_NONE;
  pthread_mutex_lock(&mu);
  now = now_real_ms();
  for (int i = 0; i < ctl.nrules; i++) {
    struct rule *r = &ctl.rules[i];
    if (rule_matches(r, R_DELAY, fn, now)) {
      consume(r);
      delay += r->ms;
    } else if (rule_matches(r, R_HIDE, fn, now) && !tl_hide) {
      consume(r);
      tl_hide = 1;
    } else if (act == ACT_NONE && rule_matches(r, R_FAIL, fn, now)) {
      consume(r);
      *inj = r->rv;
      act = r->when != ACT_NONE ? r->when : default_when(fn);
    }
  }
  pthread_mutex_unlock(&mu);
  if (delay > 0) {
    event("delay %s ms=%ld", fn_names[fn], delay);
    sleep_ms(delay);
  }
  if (act != ACT_NONE)
    event("fail %s rv=0x%lx %s", fn_names[fn], (unsigned long)*inj, act == ACT_BEFORE ? "before" : "after");
  return act;
}

/* ------------------------------------------------------------------------------------------ */
/* GCM IV conventions: per-session state between C_EncryptInit and C_Encrypt/C_EncryptFinal     */

#define MAX_GCM_SESSIONS 4096
struct gcm_session {
  CK_SESSION_HANDLE h;
  CK_ULONG ivlen; /* 0: slot free */
  unsigned char iv[16];
};
static struct gcm_session gcm_sessions[MAX_GCM_SESSIONS];
static int gcm_in_use;

/* Takes a copy of the session's state; returns 0 when it has none. */
static int gcm_get(CK_SESSION_HANDLE h, struct gcm_session *out) {
  int found = 0;
  pthread_mutex_lock(&mu);
  if (gcm_in_use > 0)
    for (int i = 0; i < MAX_GCM_SESSIONS; i++)
      if (gcm_sessions[i].ivlen && gcm_sessions[i].h == h) {
        *out = gcm_sessions[i];
        found = 1;
        break;
      }
  pthread_mutex_unlock(&mu);
  return found;
}

static void gcm_clear_locked(CK_SESSION_HANDLE h) {
  if (gcm_in_use == 0) return;
  for (int i = 0; i < MAX_GCM_SESSIONS; i++)
    if (gcm_sessions[i].ivlen && gcm_sessions[i].h == h) {
      gcm_sessions[i].ivlen = 0;
      gcm_in_use--;
    }
}

static void gcm_clear(CK_SESSION_HANDLE h) {
  pthread_mutex_lock(&mu);
  gcm_clear_locked(h);
  pthread_mutex_unlock(&mu);
}

static void gcm_clear_all(void) {
  pthread_mutex_lock(&mu);
  memset(gcm_sessions, 0, sizeof gcm_sessions);
  gcm_in_use = 0;
  pthread_mutex_unlock(&mu);
}

static int gcm_set(CK_SESSION_HANDLE h, const unsigned char *iv, CK_ULONG ivlen) {
  int ok = 0;
  pthread_mutex_lock(&mu);
  gcm_clear_locked(h);
  for (int i = 0; i < MAX_GCM_SESSIONS; i++)
    if (!gcm_sessions[i].ivlen) {
      gcm_sessions[i].h = h;
      gcm_sessions[i].ivlen = ivlen;
      memcpy(gcm_sessions[i].iv, iv, ivlen);
      gcm_in_use++;
      ok = 1;
      break;
    }
  pthread_mutex_unlock(&mu);
  return ok;
}

static CK_RV impl_C_Finalize(CK_VOID_PTR pReserved) {
  CK_RV rv = T->C_Finalize(pReserved);
  if (rv == CKR_OK) gcm_clear_all();
  return rv;
}

static CK_RV impl_C_CloseSession(CK_SESSION_HANDLE hSession) {
  CK_RV rv = T->C_CloseSession(hSession);
  gcm_clear(hSession);
  return rv;
}

static CK_RV impl_C_CloseAllSessions(CK_SLOT_ID slotID) {
  CK_RV rv = T->C_CloseAllSessions(slotID);
  if (rv == CKR_OK) gcm_clear_all(); /* tests use one slot per module instance; good enough */
  return rv;
}

/*
 * `gcm-iv-bits strict`: refuse GCM parameters whose ulIvBits is not ulIvLen * 8, as a token that
 * checks the v2.40 field would (pkcs11js's CK_PARAMS_AES_GCM leaves the field uninitialised).
 */
static int gcm_iv_bits_refused(CK_MECHANISM_PTR m, const char *fn) {
  pthread_mutex_lock(&mu);
  int strict = ctl.strict_iv_bits;
  pthread_mutex_unlock(&mu);
  if (!strict || !m || m->mechanism != CKM_AES_GCM) return 0;
  if (!m->pParameter || m->ulParameterLen != sizeof(CK_GCM_PARAMS)) return 0; /* the module decides */
  const CK_GCM_PARAMS *p = (const CK_GCM_PARAMS *)m->pParameter;
  if (p->ulIvBits == p->ulIvLen * 8) return 0;
  event("gcm-refused %s iv-bits=%lu iv-len=%lu", fn, (unsigned long)p->ulIvBits, (unsigned long)p->ulIvLen);
  return 1;
}

static CK_RV impl_C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  if (gcm_iv_bits_refused(pMechanism, "C_DecryptInit")) return CKR_MECHANISM_PARAM_INVALID;
  return T->C_DecryptInit(hSession, pMechanism, hKey);
}

static CK_RV impl_C_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  if (gcm_iv_bits_refused(pMechanism, "C_EncryptInit")) return CKR_MECHANISM_PARAM_INVALID;
  pthread_mutex_lock(&mu);
  int mode = ctl.gcm;
  pthread_mutex_unlock(&mu);
  if (mode == GCM_HOST || !pMechanism || pMechanism->mechanism != CKM_AES_GCM) {
    CK_RV rv = T->C_EncryptInit(hSession, pMechanism, hKey);
    if (rv == CKR_OK) gcm_clear(hSession);
    return rv;
  }
  const CK_ULONG want = mode == GCM_LUNA_FIPS ? 16 : 12;
  const char *name = mode == GCM_LUNA_FIPS ? "luna-fips" : "cloudhsm";
  if (!pMechanism->pParameter || pMechanism->ulParameterLen != sizeof(CK_GCM_PARAMS)) {
    event("gcm-refused %s bad-params", name);
    return CKR_MECHANISM_PARAM_INVALID;
  }
  const CK_GCM_PARAMS *p = (const CK_GCM_PARAMS *)pMechanism->pParameter;
  /* ulIvBits is not checked: pkcs11js leaves it unset for CK_PARAMS_AES_GCM (and SoftHSM2 ignores it). */
  int zero = p->pIv != NULL && p->ulIvLen == want;
  for (CK_ULONG i = 0; zero && i < want; i++) zero = p->pIv[i] == 0;
  if (!zero) {
    event("gcm-refused %s caller-iv len=%lu", name, (unsigned long)p->ulIvLen);
    return CKR_MECHANISM_PARAM_INVALID;
  }
  unsigned char iv[16];
  if (getrandom(iv, want, 0) != (ssize_t)want) return CKR_FUNCTION_FAILED;
  CK_GCM_PARAMS q = *p;
  q.pIv = iv;
  q.ulIvLen = want;
  q.ulIvBits = want * 8;
  CK_MECHANISM m = *pMechanism;
  m.pParameter = &q;
  CK_RV rv = T->C_EncryptInit(hSession, &m, hKey);
  if (rv == CKR_OK && !gcm_set(hSession, iv, want)) {
    /* No room to remember the IV: fail rather than return a ciphertext nobody can decrypt. */
    return CKR_HOST_MEMORY;
  }
  if (rv == CKR_OK) event("gcm-init %s", name);
  return rv;
}

/* Runs a single-part or final encrypt call and appends the session's IV to what it returns. */
static CK_RV gcm_finish(CK_SESSION_HANDLE h, const struct gcm_session *s, CK_BYTE_PTR out, CK_ULONG_PTR pul,
                        CK_RV (*call)(CK_SESSION_HANDLE, void *, CK_BYTE_PTR, CK_ULONG_PTR), void *arg) {
  if (!pul) return CKR_ARGUMENTS_BAD;
  CK_ULONG need = 0;
  CK_RV rv = call(h, arg, NULL, &need); /* a size query does not end the operation */
  if (rv != CKR_OK) {
    gcm_clear(h);
    return rv;
  }
  if (!out) {
    *pul = need + s->ivlen;
    return CKR_OK;
  }
  if (*pul < need + s->ivlen) {
    *pul = need + s->ivlen;
    return CKR_BUFFER_TOO_SMALL;
  }
  CK_ULONG got = *pul - s->ivlen;
  rv = call(h, arg, out, &got);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    *pul = got + s->ivlen;
    return rv;
  }
  gcm_clear(h);
  if (rv != CKR_OK) return rv;
  memcpy(out + got, s->iv, s->ivlen);
  *pul = got + s->ivlen;
  return CKR_OK;
}

struct encrypt_args {
  CK_BYTE_PTR data;
  CK_ULONG len;
};

static CK_RV call_encrypt(CK_SESSION_HANDLE h, void *arg, CK_BYTE_PTR out, CK_ULONG_PTR pul) {
  struct encrypt_args *a = arg;
  return T->C_Encrypt(h, a->data, a->len, out, pul);
}

static CK_RV call_encrypt_final(CK_SESSION_HANDLE h, void *arg, CK_BYTE_PTR out, CK_ULONG_PTR pul) {
  (void)arg;
  return T->C_EncryptFinal(h, out, pul);
}

static CK_RV impl_C_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                            CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen) {
  struct gcm_session s;
  if (!gcm_get(hSession, &s)) return T->C_Encrypt(hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen);
  struct encrypt_args a = {pData, ulDataLen};
  return gcm_finish(hSession, &s, pEncryptedData, pulEncryptedDataLen, call_encrypt, &a);
}

static CK_RV impl_C_EncryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,
                                 CK_ULONG_PTR pulLastEncryptedPartLen) {
  struct gcm_session s;
  if (!gcm_get(hSession, &s)) return T->C_EncryptFinal(hSession, pLastEncryptedPart, pulLastEncryptedPartLen);
  return gcm_finish(hSession, &s, pLastEncryptedPart, pulLastEncryptedPartLen, call_encrypt_final, NULL);
}

static CK_RV impl_C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                                CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) {
  if (tl_hide) {
    tl_hide = 0;
    if (!pulObjectCount) return CKR_ARGUMENTS_BAD;
    *pulObjectCount = 0;
    event("hide C_FindObjects");
    return CKR_OK;
  }
  return T->C_FindObjects(hSession, phObject, ulMaxObjectCount, pulObjectCount);
}
