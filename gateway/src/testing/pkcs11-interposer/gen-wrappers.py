#!/usr/bin/env python3
"""Prints the generated middle block of interposer.c (function ids, names, one forwarding wrapper
per PKCS#11 function, fill_function_list) from pkcs11f.h; paste it between head and tail by hand.
Usage: python3 gen-wrappers.py node_modules/pkcs11js/includes/pkcs11/pkcs11f.h"""
import re,sys
src=open(sys.argv[1]).read()
src=re.sub(r'/\*.*?\*/','',src,flags=re.S)
fns=re.findall(r'CK_PKCS11_FUNCTION_INFO\((\w+)\)\s*#ifdef CK_NEED_ARG_LIST\s*\((.*?)\);\s*#endif',src,flags=re.S)
custom={'C_Finalize','C_CloseSession','C_CloseAllSessions','C_EncryptInit','C_Encrypt','C_EncryptFinal','C_DecryptInit','C_FindObjects'}
out=[]
out.append('/* Generated from pkcs11f.h (PKCS#11 v2.40 order) by a small script; one entry per function. */')
out.append('enum fn_id {')
for n,_ in fns: out.append(f'  FN_{n},')
out.append('  FN_COUNT\n};\n')
out.append('static const char *const fn_names[FN_COUNT] = {')
for n,_ in fns: out.append(f'  "{n}",')
out.append('};\n')
for n,a in fns:
    if n=='C_GetFunctionList': continue
    params=[p.strip() for p in a.split(',') if p.strip()]
    names=[re.findall(r'(\w+)\s*$',p)[0] for p in params]
    ps=', '.join(' '.join(p.split()) for p in params) or 'void'
    impl=f'impl_{n}' if n in custom else f'T->{n}'
    out.append(f'static CK_RV W_{n}({ps}) {{')
    out.append(f'  CK_RV inj = CKR_OK;')
    out.append(f'  int act = pre_call(FN_{n}, &inj);')
    out.append(f'  if (act == ACT_BEFORE) return inj;')
    out.append(f'  CK_RV rv = {impl}({", ".join(names)});')
    out.append(f'  return act == ACT_AFTER ? inj : rv;')
    out.append('}\n')
out.append('static void fill_function_list(CK_FUNCTION_LIST *f) {')
out.append('  f->version.major = 2;\n  f->version.minor = 40;')
for n,_ in fns:
    if n=='C_GetFunctionList': out.append(f'  f->{n} = C_GetFunctionList;')
    else: out.append(f'  f->{n} = W_{n};')
out.append('}')
print('\n'.join(out))
