import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '#devstack/paths.js';

/** A command the README or docs/ show: where, which CLI, its subcommand words and options. */
interface Example {
  readonly where: string;
  readonly npx: boolean;
  readonly cli: 'keygate-gateway' | 'keygate-shim';
  readonly words: readonly string[];
  readonly options: readonly string[];
}

const DOCS = [
  'README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
// `keygate-gateway keys create …`, not `deploy/keygate-gateway`, `keygate-gateway.keygate.svc` or a
// path to the launcher (`/app/gateway/bin/keygate-gateway.js`, how a container runs it).
const COMMAND =
  /(?<![\w/.-])(npx )?(keygate-gateway|keygate-shim)((?: [a-z][a-z|-]*(?=[\s`'"]|$))+)([^`\n]*)/g;

function examples(): Example[] {
  const found: Example[] = [];
  for (const file of DOCS) {
    readFileSync(join(REPO_ROOT, file), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        for (const m of line.matchAll(COMMAND)) {
          found.push({
            where: `${file}:${i + 1}`,
            npx: m[1] !== undefined,
            cli: m[2] as Example['cli'],
            words: (m[3] ?? '').trim().split(' '),
            options: [...(m[4] ?? '').matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((o) => o[0]),
          });
        }
      });
  }
  return found;
}

/** `npx <cli> <args>` from the repository root, as a reader types it. */
function npx(cli: string, args: string[]) {
  return spawnSync('npx', ['--no-install', cli, ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/** What npx runs for `cli` (the link npm made in node_modules/.bin), without npx's own start-up. */
function linked(cli: string, args: string[]) {
  return spawnSync(join(REPO_ROOT, 'node_modules/.bin', cli), args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/**
 * The commands the README and docs print work exactly as printed from the repository root: each
 * is `npx keygate-…` (npm links both CLIs at install), its subcommand exists and its options are
 * ones the CLI knows, checked through each example's `--help` form.
 */
describe('documented CLI commands', () => {
  const all = examples();

  it('npx finds both CLIs after npm install (no registry lookup)', () => {
    for (const cli of ['keygate-gateway', 'keygate-shim']) {
      const r = npx(cli, ['--help']);
      assert.equal(r.status, 0, `npx ${cli} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`usage:[\\s\\S]*${cli}`));
    }
  });

  it('the docs show commands (the scan finds them)', () => {
    assert.ok(all.length >= 30, `only ${all.length} commands found`);
    assert.ok(all.some((e) => e.cli === 'keygate-shim'));
  });

  it('each is written as npx keygate-… (a bare keygate-… is not on PATH in the repository)', () => {
    const bare = all.filter((e) => !e.npx).map((e) => `${e.where}: ${e.cli} ${e.words.join(' ')}`);
    assert.deepEqual(bare, []);
  });

  it('each example’s --help form runs and knows its subcommand and options', () => {
    const help = new Map<string, string>();
    const failures: string[] = [];
    for (const e of all) {
      for (const alternative of e.words.join(' ').split('|')) {
        // `keys get|rotate|disable` is three commands: `keys get`, `keys rotate` … (the first word carries).
        const words =
          alternative.includes(' ') || e.words.length === 1
            ? alternative.split(' ')
            : [e.words[0] ?? '', alternative];
        const key = `${e.cli} ${words.join(' ')}`;
        if (!help.has(key)) {
          const r = linked(e.cli, [...words, '--help']);
          if (r.status !== 0)
            failures.push(`${e.where}: \`npx ${key} --help\` exited ${r.status}: ${r.stderr.trim()}`);
          help.set(key, `${r.stdout}`);
        }
        const text = help.get(key) ?? '';
        const usageLine = text.split('\n').find((l) => words.every((w) => l.includes(w)));
        if (!usageLine) failures.push(`${e.where}: \`npx ${key} --help\` does not show ${words.join(' ')}`);
        for (const o of e.options) {
          if (!text.includes(o)) failures.push(`${e.where}: ${key} does not know ${o}`);
        }
      }
    }
    console.log(`documented CLI commands: ${all.length} examples, ${help.size} distinct --help runs`);
    assert.deepEqual(failures, []);
  });
});
