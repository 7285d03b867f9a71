import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, requestLogger } from './logger.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('logger', () => {
  it('writes {"level","ts","msg"} lines, level first', async () => {
    const out = capture();
    const log = createLogger({ name: 'gateway', destination: out.stream });
    log.info('started');
    const [line] = out.lines();
    assert.ok(line);
    assert.deepEqual(Object.keys(line).slice(0, 2), ['level', 'ts']);
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'started');
    assert.equal(line.svc, 'gateway');
    assert.match(String(line.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('redacts secret fields at the top level and one level down', () => {
    const out = capture();
    const log = createLogger({ destination: out.stream });
    log.info(
      {
        pin: '1234',
        cfg: { apiKey: 'kg_secret', token: 'eyJ' },
        req: { headers: { authorization: 'Bearer x' } },
      },
      'x',
    );
    const text = JSON.stringify(out.lines());
    for (const secret of ['1234', 'kg_secret', 'eyJ', 'Bearer x']) assert.ok(!text.includes(secret), secret);
    assert.ok(text.includes('[redacted]'));
  });

  it('gives child loggers the request id and respects the level', () => {
    const out = capture();
    const log = createLogger({ level: 'warn', destination: out.stream });
    const child = requestLogger(log, 'req-1', { op: 'wrap' });
    child.info('hidden');
    child.warn('shown');
    const lines = out.lines();
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.reqId, 'req-1');
    assert.equal(lines[0]?.op, 'wrap');
  });
});
