import assert from 'node:assert/strict';
import { test } from 'node:test';
import { medianProfile, START_STEPS, startProfile } from './start-profile.js';

const spawnedAt = Date.parse('2026-12-06T03:00:00.000Z');
const log = [
  `{"msg":"start probe","probe":"node ready","t":${spawnedAt + 40.5},"origin":${spawnedAt + 5}}`,
  `{"msg":"start probe","probe":"config read","t":${spawnedAt + 300}}`,
  `{"msg":"start probe","probe":"request","path":"/identity/token","t":${spawnedAt + 320}}`,
  `{"msg":"start probe","probe":"response","path":"/identity/token","t":${spawnedAt + 335}}`,
  `{"msg":"start probe","probe":"request","path":"/api/v2/keys/k/actions/wrap","t":${spawnedAt + 336}}`,
  '{"level":"info","ts":"2026-12-06T03:00:00.350Z","name":"keygate-shim","msg":"key_id changed"}',
  'not json at all',
  '{"level":"info","ts":"2026-12-06T03:00:00.380Z","msg":"KMS provider server started"}',
  '{"level":"info","ts":"2026-12-06T03:00:00.381Z","msg":"keygate shim started"}',
].join('\n');

test('startProfile places each step after spawn from the probe and log lines', () => {
  const p = startProfile(spawnedAt, spawnedAt + 400, log);
  assert.deepEqual(
    p.map((s) => s.step),
    [...START_STEPS],
  );
  assert.deepEqual(
    p.map((s) => s.atMs),
    [40.5, 300, 320, 335, 350, 380, 400],
  );
  assert.deepEqual(
    p.map((s) => s.deltaMs),
    [40.5, 259.5, 20, 15, 15, 30, 20],
  );
});

test('startProfile leaves a missing step NaN and measures the next one from the last found', () => {
  const p = startProfile(spawnedAt, spawnedAt + 500, log.replace('"key_id changed"', '"other"'));
  const key = p.find((s) => s.step === 'key version');
  const socket = p.find((s) => s.step === 'socket ready');
  assert.ok(key && Number.isNaN(key.atMs) && Number.isNaN(key.deltaMs));
  assert.equal(socket?.deltaMs, 45);
});

test('medianProfile takes the median time of each step over the starts', () => {
  const a = startProfile(spawnedAt, spawnedAt + 400, log);
  const b = startProfile(spawnedAt - 100, spawnedAt + 400, log);
  const c = startProfile(spawnedAt - 10, spawnedAt + 400, log);
  const m = medianProfile([a, b, c]);
  assert.equal(m.find((s) => s.step === 'first Decrypt')?.atMs, 410);
  assert.equal(m.find((s) => s.step === 'node bootstrap')?.atMs, 50.5);
});
