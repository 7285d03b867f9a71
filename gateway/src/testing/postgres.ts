import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Test support: a throw-away PostgreSQL cluster (Debian's `postgresql` package) in a temp folder,
 * on a free loopback port with a password (scram-sha-256), removed afterwards. PostgreSQL refuses
 * to run as root, so as root the cluster belongs to the `postgres` user (or `nobody`) and every
 * server command runs through `runuser`. Used by the store contract suite, the multi-replica
 * suite, the benchmarks and the dev stack (`@keygate/gateway/testing/postgres`).
 */

/** Where PostgreSQL's server programs are: PG_BIN, else Debian's newest /usr/lib/postgresql/N/bin. */
export function findPostgresBin(): string | undefined {
  const fromEnv = process.env.KEYGATE_PG_BIN;
  if (fromEnv !== undefined && existsSync(join(fromEnv, 'initdb'))) return fromEnv;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  for (const dir of ['/usr/local/pgsql/bin', '/usr/local/bin', '/usr/bin']) {
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

export interface TestPostgresOptions {
  /** Database created for the tests (default `keygate`). */
  readonly database?: string;
  /** Turn off fsync for speed (unit suites); the default keeps PostgreSQL's durable settings. */
  readonly fast?: boolean;
  /** Extra `-c name=value` server settings. */
  readonly settings?: Readonly<Record<string, string>>;
}

/** A running throw-away cluster. */
export interface TestPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  /** A file holding the password (mode 0600), for `store.postgres.passwordFile`. */
  readonly passwordFile: string;
  /** `postgres://user:password@127.0.0.1:port/database`. */
  readonly url: string;
  /** The temp folder (data, log, socket). */
  readonly dir: string;
  /** Stops the server (`fast`: rolls back open transactions; `immediate`: like a crash). */
  stop(mode?: 'fast' | 'immediate'): void;
  /** Starts it again on the same port. */
  start(): void;
  /** stop + start. */
  restart(mode?: 'fast' | 'immediate'): void;
  /**
   * stop, `downMs` of outage, start — without blocking this process's event loop, so load that
   * runs in it goes on (and sees the outage) meanwhile.
   */
  restartInBackground(mode?: 'fast' | 'immediate', downMs?: number): Promise<void>;
  /** Runs SQL with psql as the superuser and returns its output (tuples only, unaligned). */
  psql(sql: string): string;
  /** Stops the server and removes the folder. */
  remove(): void;
}

const live = new Set<TestPostgres>();
let exitHookSet = false;

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The uid/gid the server runs as when this process is root: `postgres`, else `nobody`. */
function serverAccount(): { user: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    const r = spawnSync('id', ['-u', user], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', user], { encoding: 'utf8' });
    if (r.status === 0 && g.status === 0) return { user, uid: Number(r.stdout), gid: Number(g.stdout) };
  }
  throw new Error('running as root and neither the postgres nor the nobody account exists');
}

/**
 * Creates, starts and returns a throw-away cluster. Throws a clear error when PostgreSQL is not
 * installed (scripts/preflight.mjs installs it for `npm test`).
 */
export async function startTestPostgres(options: TestPostgresOptions = {}): Promise<TestPostgres> {
  const bin = findPostgresBin();
  if (bin === undefined) {
    throw new Error(
      'PostgreSQL server programs not found (install Debian package postgresql, or set KEYGATE_PG_BIN)',
    );
  }
  const account = serverAccount();
  const dir = mkdtempSync(join(tmpdir(), 'keygate-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(sock);
  const user = 'keygate';
  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'superuser.pw');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (account !== undefined) {
    for (const p of [dir, sock, pwfile]) chownSync(p, account.uid, account.gid);
  }
  const command = (program: string, args: string[]): [string, string[]] => {
    const cmd = join(bin, program);
    return account === undefined ? [cmd, args] : ['runuser', ['-u', account.user, '--', cmd, ...args]];
  };
  const env = { ...process.env, LC_ALL: 'C', PGPASSWORD: password };
  const run = (program: string, args: string[], opts: { quiet?: boolean } = {}): string => {
    const [file, argv] = command(program, args);
    return execFileSync(file, argv, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', opts.quiet === true ? 'ignore' : 'pipe'],
      env,
      timeout: 60_000,
    });
  };
  const runAsync = async (program: string, args: string[]): Promise<void> => {
    const [file, argv] = command(program, args);
    await promisify(execFile)(file, argv, { env, timeout: 60_000 });
  };
  run('initdb', [
    '-D',
    data,
    '-U',
    user,
    `--pwfile=${pwfile}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: sock,
    max_connections: '200',
    ...(options.fast === true ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
    ...options.settings,
  };
  const opts = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
  const log = join(dir, 'server.log');
  const database = options.database ?? 'keygate';
  const pg: TestPostgres = {
    host: '127.0.0.1',
    port,
    database,
    user,
    password,
    passwordFile,
    url: `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    dir,
    start() {
      run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', opts, 'start'], { quiet: true });
    },
    stop(mode = 'fast') {
      run('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', mode, 'stop'], { quiet: true });
    },
    restart(mode = 'fast') {
      pg.stop(mode);
      pg.start();
    },
    async restartInBackground(mode = 'fast', downMs = 0) {
      await runAsync('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', mode, 'stop']);
      await new Promise((r) => setTimeout(r, downMs));
      await runAsync('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', opts, 'start']);
    },
    psql(sql: string) {
      return run('psql', [
        '-h',
        sock,
        '-p',
        String(port),
        '-U',
        user,
        '-d',
        database,
        '-At',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        sql,
      ]);
    },
    remove() {
      live.delete(pg);
      try {
        pg.stop('immediate');
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  pg.start();
  live.add(pg);
  if (!exitHookSet) {
    exitHookSet = true;
    // A test that dies must not leave a server running.
    process.once('exit', () => {
      for (const p of live) p.remove();
    });
  }
  run(
    'psql',
    ['-h', sock, '-p', String(port), '-U', user, '-d', 'postgres', '-c', `CREATE DATABASE "${database}"`],
    {
      quiet: true,
    },
  );
  return pg;
}
