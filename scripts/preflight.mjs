#!/usr/bin/env node
// `npm test`'s first step: the system tools the test suites need. A missing Debian package is
// installed when it can be (root, apt-get on PATH), saying so first; otherwise the run stops here
// with one line naming what is missing and the command that installs it — never 35 failed tests.
// Run alone: node scripts/preflight.mjs (exit 0 = ready, 1 = stopped).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** What the suites run, the package that brings it, and who needs it. */
const DEBIAN_TOOLS = [
  { command: 'softhsm2-util', pkg: 'softhsm2', why: 'the PKCS#11 tests run on SoftHSM2 tokens' },
  { command: 'gcc', pkg: 'gcc', why: 'the PKCS#11 interposer tests build their test module with gcc' },
  {
    command: 'initdb',
    pkg: 'postgresql',
    why: 'the PostgreSQL store and multi-replica tests run a throw-away PostgreSQL',
    // Debian keeps the server programs off PATH, in /usr/lib/postgresql/<version>/bin.
    find: postgresBin,
  },
  {
    command: 'libsoftokn3.so',
    pkg: 'libnss3',
    why: 'the PKCS#11 adapter suite also runs on NSS softoken',
    find: nssSoftoken,
    // Without it that one suite skips, saying why; the rest of the run does not need it.
    optional: true,
  },
  {
    command: 'chromium',
    pkg: 'chromium',
    why: "the console's browser suite (test/ui) drives chromium with puppeteer-core",
    // Without it that suite skips, saying why (.ci/run installs it).
    optional: true,
  },
];

/** NSS softoken's PKCS#11 module where Debian's libnss3 puts it. */
function nssSoftoken() {
  return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib']
    .map((d) => join(d, 'libsoftokn3.so'))
    .find((p) => existsSync(p));
}

/** Debian's newest /usr/lib/postgresql/N/bin holding initdb (or KEYGATE_PG_BIN). */
function postgresBin(env) {
  if (env.KEYGATE_PG_BIN && existsSync(join(env.KEYGATE_PG_BIN, 'initdb'))) return env.KEYGATE_PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const v = readdirSync(root)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(root, d, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))[0];
  return v ? join(root, v, 'bin') : undefined;
}
/** Go builds the IBM Key Protect client test; it needs the version its go.mod names (the client's). */
const GO_MODULE = new URL('../test/compat/keyprotect-go/go.mod', import.meta.url);
const GO_MIN = (/^go (\d+)\.(\d+)(?:\.(\d+))?$/m.exec(readFileSync(GO_MODULE, 'utf8')) ?? [])
  .slice(1)
  .map((n) => Number(n ?? 0));

/** The command's path on PATH, or undefined. */
function which(command, env) {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {}
  }
  return undefined;
}

/** The Go version on PATH as [major, minor, patch], or undefined when there is none. */
function goVersion(env) {
  const go = which('go', env);
  if (!go) return undefined;
  const r = spawnSync(go, ['version'], { env, encoding: 'utf8' });
  const m = /go(\d+)\.(\d+)(?:\.(\d+))?/.exec(r.stdout ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

/** a < b, component by component. */
const older = (a, b) => {
  for (let i = 0; i < b.length; i++) if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) < b[i];
  return false;
};

/**
 * Checks (and where it can, installs) what the tests need. Returns undefined when ready, else the
 * one line that says what is missing and how to get it.
 */
export function preflight(env = process.env, say = (l) => console.log(l)) {
  const found = (t) => (t.find ? t.find(env) : which(t.command, env));
  const canInstall = process.getuid?.() === 0 && which('apt-get', env);
  const lacking = DEBIAN_TOOLS.filter((t) => !found(t));
  // An optional tool that cannot be installed is only reported: its suite skips with the reason.
  for (const t of lacking.filter((x) => x.optional && !canInstall))
    say(
      `npm test: ${t.command} (package ${t.pkg}) is not installed and cannot be (not root): ${t.why} is skipped`,
    );
  const missing = lacking.filter((t) => !t.optional || canInstall);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => t.pkg)), 'opensc'];
    const install = `apt-get install -y ${pkgs.join(' ')}`;
    if (!canInstall) {
      return `npm test: ${missing.map((t) => `${t.command} (package ${t.pkg}: ${t.why})`).join(', ')} is not installed; install it with: sudo apt-get update && sudo ${install}`;
    }
    say(`npm test: installing ${pkgs.join(' ')} with apt-get (${missing.map((t) => t.why).join('; ')})`);
    const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [
      ['update', '-qq'],
      ['install', '-y', '-qq', '--no-install-recommends', ...pkgs],
    ]) {
      const r = spawnSync('apt-get', args, { env: aptEnv, stdio: ['ignore', 'ignore', 'inherit'] });
      if (r.status !== 0)
        return `npm test: \`apt-get ${args.join(' ')}\` failed; install the packages with: ${install}`;
    }
    const still = missing.filter((t) => !t.optional && !found(t));
    if (still.length > 0)
      return `npm test: ${still.map((t) => t.command).join(', ')} still missing after apt-get`;
  }
  if (env.KEYGATE_TEST_SKIP_GO !== '1') {
    const v = goVersion(env);
    if (!v || older(v, GO_MIN)) {
      return `npm test: Go ${GO_MIN.join('.')} or later is ${v ? `needed (found ${v.join('.')})` : 'not installed'}: the IBM Key Protect client test (test/compat/keyprotect-go) builds with it; install it from https://go.dev/doc/install, or run KEYGATE_TEST_SKIP_GO=1 npm test to skip that one test`;
    }
  }
  return undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const stop = preflight();
  if (stop) {
    console.error(stop);
    process.exit(1);
  }
}
