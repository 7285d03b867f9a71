import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  ERROR_CATALOGUE,
  ERROR_CODES,
  ERROR_KINDS,
  type ErrorKind,
  errorKind,
  isErrorCode,
} from './catalogue.js';
import { GrpcStatus } from './grpc-status.js';
import { asKeygateError, isKeygateError, KeygateError } from './keygate-error.js';

const docsPath = new URL('../../../docs/errors.md', import.meta.url);
const ROW =
  /^\|\s*`([A-Z0-9_]+)`\s*\|\s*(\d{3})\s*\|\s*([A-Z_]+)\s*\|\s*([a-z-]+)\s*\|\s*(.+?)\s*\|\s*(.+?)\s*\|$/;

interface DocRow {
  http: number;
  grpc: string;
  kind: string;
  message: string;
}

function docRows(): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  for (const line of readFileSync(docsPath, 'utf8').split('\n')) {
    const m = ROW.exec(line);
    if (!m) continue;
    const [, code, http, grpc, kind, message] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    assert.ok(!rows.has(code), `docs/errors.md lists ${code} twice`);
    rows.set(code, { http: Number(http), grpc, kind, message });
  }
  return rows;
}

/** Every code's kind, written out: callers decide on kinds, so moving a code is a deliberate change. */
const KINDS: Record<ErrorKind, readonly string[]> = {
  input: [
    'BAD_BODY_ERR',
    'INVALID_FIELD_ERR',
    'INSTANCE_HEADER_MISSING_ERR',
    'BODY_TOO_LARGE_ERR',
    'INVALID_QUERY_PARAM_ERR',
    'UNSUPPORTED_MEDIA_TYPE_ERR',
    'NOT_FOUND_ERR',
    'METHOD_NOT_ALLOWED_ERR',
    'KEY_ALREADY_EXISTS_ERR',
    'UNPROCESSABLE_CIPHERTEXT_ERR',
    'KEY_VERSION_DISABLED_ERR',
    'KEY_VERSION_CURRENT_ERR',
    'ROTATION_NOT_CONVERGED',
    'DEK_TOO_SHORT_ERR',
    'PLAINTEXT_TOO_LARGE_ERR',
    'CIPHERTEXT_TOO_LARGE_ERR',
    'KEY_ID_MISMATCH_ERR',
    'UNSUPPORTED_VERSION_ERR',
    'IDENTITIES_READ_ONLY',
    'IDENTITY_NOT_FOUND',
    'IDENTITY_EXISTS',
    'CLUSTER_EXISTS',
    'CLUSTER_NOT_FOUND',
    'CLUSTERS_NEED_TOKENS',
    'APIKEY_NOT_FOUND',
  ],
  auth: [
    'AUTH_CERT_REQUIRED',
    'AUTH_TOKEN_MISSING',
    'AUTH_TOKEN_INVALID',
    'AUTH_TOKEN_EXPIRED',
    'AUTH_TOKEN_CERT_MISMATCH',
    'AUTH_APIKEY_INVALID',
    'AUTH_GRANT_TYPE_INVALID',
    'AUTH_TOKEN_REVOKED',
    'FORBIDDEN_ERR',
    'GATEWAY_REFUSED',
    'CONSOLE_SESSION_EXPIRED',
    'CONSOLE_CSRF_REFUSED',
    'CONSOLE_LOGIN_LOCKED',
    'CONSOLE_HOST_REFUSED',
  ],
  'key-state': [
    'KEY_NOT_FOUND_ERR',
    'KEY_DELETED_ERR',
    'KEY_ACTION_INVALID_STATE_ERR',
    'KEY_USAGE_LIMIT_ERR',
  ],
  transient: [
    'RATE_LIMITED_ERR',
    'HSM_UNAVAILABLE',
    'HSM_KEY_OBJECT_MISSING',
    'AUDIT_UNAVAILABLE',
    'STORE_UNAVAILABLE',
    'OVERLOADED',
    'DEADLINE_EXCEEDED',
    'GATEWAY_UNAVAILABLE',
    'GATEWAY_TIMEOUT',
    'NOT_READY',
  ],
  internal: [
    'HSM_PIN_INCORRECT',
    'HSM_PIN_LOCKED',
    'HSM_ERROR',
    'HSM_KEY_OBJECT_REFUSED',
    'GATEWAY_PROTOCOL_ERR',
    'CONFIG_INVALID',
    'SOCKET_IN_USE',
    'HEALTH_PORT_IN_USE',
    'AUDIT_ANCHOR_MISMATCH',
    'INTERNAL_ERR',
  ],
};

describe('error catalogue', () => {
  it('has one line in docs/errors.md per code, with the same HTTP status, gRPC status, kind and text', () => {
    const rows = docRows();
    assert.deepEqual(
      [...rows.keys()].sort(),
      [...ERROR_CODES].sort(),
      'codes in docs/errors.md differ from the catalogue',
    );
    for (const code of ERROR_CODES) {
      const spec = ERROR_CATALOGUE[code];
      const row = rows.get(code);
      assert.equal(row?.http, spec.http, `${code}: HTTP status differs`);
      assert.equal(row?.grpc, spec.grpc, `${code}: gRPC status differs`);
      assert.equal(row?.kind, spec.kind, `${code}: kind differs`);
      assert.equal(row?.message, spec.message, `${code}: client text differs`);
    }
  });

  it('maps every code to a valid HTTP error status and a non-OK gRPC status', () => {
    for (const code of ERROR_CODES) {
      const spec = ERROR_CATALOGUE[code];
      assert.ok(spec.http >= 400 && spec.http <= 599, code);
      assert.ok(GrpcStatus[spec.grpc] > 0, code);
      assert.ok(spec.message.length > 0 && spec.message.length < 200, code);
    }
  });

  it('pins the kind of every code', () => {
    assert.deepEqual(Object.keys(KINDS), [...ERROR_KINDS]);
    assert.deepEqual(Object.values(KINDS).flat().sort(), [...ERROR_CODES].sort(), 'every code in one kind');
    for (const [kind, codes] of Object.entries(KINDS)) {
      for (const code of codes) assert.equal(isErrorCode(code) && errorKind(code), kind, code);
    }
    // What the gateway audits as denied was every AUTH_* code and FORBIDDEN_ERR.
    for (const code of ERROR_CODES) {
      if (code.startsWith('AUTH_') || code === 'FORBIDDEN_ERR') assert.equal(errorKind(code), 'auth', code);
    }
  });

  it('pins the number of codes so that an added code is a deliberate change', () => {
    assert.equal(ERROR_CODES.length, 63);
  });

  it('recognises codes', () => {
    assert.equal(isErrorCode('KEY_DELETED_ERR'), true);
    assert.equal(isErrorCode('toString'), false);
    assert.equal(isErrorCode(42), false);
  });
});

describe('KeygateError', () => {
  it('carries the fixed client text, statuses and a log-only cause', () => {
    const cause = Object.assign(new Error('CKR_PIN_INCORRECT'), { code: 160 });
    const err = new KeygateError('HSM_PIN_INCORRECT', { cause, detail: { ckr: 'CKR_PIN_INCORRECT' } });
    assert.equal(err.message, ERROR_CATALOGUE.HSM_PIN_INCORRECT.message);
    assert.equal(err.httpStatus, 503);
    assert.equal(err.grpcStatus, GrpcStatus.UNAVAILABLE);
    assert.ok(!err.message.includes('CKR'));
    assert.deepEqual(err.toLog(), {
      code: 'HSM_PIN_INCORRECT',
      detail: { ckr: 'CKR_PIN_INCORRECT' },
      cause: { name: 'Error', message: 'CKR_PIN_INCORRECT', code: 160 },
    });
  });

  it('is recognised across package copies by its brand, and wraps foreign errors', () => {
    const foreign = Object.assign(Object.create(null), { [Symbol.for('keygate.error')]: true });
    assert.equal(isKeygateError(foreign), true);
    assert.equal(isKeygateError(new Error('x')), false);
    const wrapped = asKeygateError(new TypeError('boom'));
    assert.equal(wrapped.code, 'INTERNAL_ERR');
    assert.ok(!wrapped.message.includes('boom'));
    const same = new KeygateError('NOT_READY');
    assert.equal(asKeygateError(same), same);
  });
});
