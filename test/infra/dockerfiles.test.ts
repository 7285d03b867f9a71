import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { obj, readRepo, readYaml, repoPath, str, type Y } from './infra-files.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly body: Instruction[];
}

/** Splits a Dockerfile into stages (continuation lines joined, comments dropped, ARG defaults substituted in FROM). */
function parseDockerfile(rel: string): Stage[] {
  const text = readRepo(rel).replace(/\\\n/g, ' ');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `${rel}: cannot parse "${line}"`);
    const op = m[1] ?? '';
    const rest = (m[2] ?? '').trim();
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args.set(k ?? '', v ?? '');
      continue;
    }
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      assert.ok(f, `${rel}: FROM ${rest}`);
      const image = (f[1] ?? '').replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? `\${${k}}`);
      stages.push({ from: image, name: f[2], body: [] });
      continue;
    }
    const stage = stages.at(-1);
    assert.ok(stage, `${rel}: ${op} before FROM`);
    stage.body.push({ op, args: rest });
  }
  return stages;
}

/** A tsconfig file: JSON with comments (tsc reads both). */
function readJsonc(rel: string): Y {
  const text = readRepo(rel).replace(/^\s*\/\/.*$/gm, '');
  return obj(JSON.parse(text), rel);
}

/** Paths a COPY takes from the build context (not --from). */
function contextSources(i: Instruction): string[] {
  const words = i.args.split(/\s+/).filter((w) => !w.startsWith('--'));
  return words.slice(0, -1);
}

/** The production dependency closure of a workspace, from package-lock.json. */
function prodClosure(workspace: string): Set<string> {
  const lock = obj(JSON.parse(readRepo('package-lock.json')), 'package-lock.json');
  const packages = obj(lock.packages, 'packages');
  const seen = new Set<string>();
  const names = new Set<string>();
  const resolve = (from: string, dep: string): string | undefined => {
    let dir = from;
    for (;;) {
      const candidate = dir === '' ? `node_modules/${dep}` : `${dir}/node_modules/${dep}`;
      if (packages[candidate] !== undefined) return candidate;
      if (dir === '') return undefined;
      const idx = dir.lastIndexOf('/node_modules/');
      dir = idx >= 0 ? dir.slice(0, idx) : '';
    }
  };
  const visit = (key: string) => {
    if (seen.has(key)) return;
    seen.add(key);
    const entry = obj(packages[key], key);
    if (entry.link === true) return visit(str(entry.resolved, `${key}.resolved`));
    const optionalPeers = obj(entry.peerDependenciesMeta ?? {}, 'meta');
    const deps = [
      ...Object.keys(obj(entry.dependencies ?? {}, 'deps')),
      ...Object.keys(obj(entry.optionalDependencies ?? {}, 'optional')),
      ...Object.keys(obj(entry.peerDependencies ?? {}, 'peers')).filter(
        (p) => (optionalPeers[p] as Y | undefined)?.optional !== true,
      ),
    ];
    for (const d of deps) {
      const at = resolve(key, d);
      if (at === undefined) continue; // an optional dependency not installed on this platform
      names.add(d);
      visit(at);
    }
  };
  visit(workspace);
  return names;
}

/** Whether root package.json `engines.node` admits Node `major` (its ranges are `>=a.b <c` or `>=a`). */
function enginesAdmit(major: number): boolean {
  const pkg = obj(JSON.parse(readRepo('package.json')), 'package.json');
  const range = str(obj(pkg.engines, 'engines').node, 'engines.node');
  return range.split('||').some((part) => {
    const lo = /^>=(\d+)/.exec(part.trim());
    const hi = /<(\d+)\s*$/.exec(part.trim());
    return lo !== null && major >= Number(lo[1]) && (hi === null || major < Number(hi[1]));
  });
}

const MINIMAL_RUNTIME =
  /^(gcr\.io\/distroless\/nodejs\d+-debian\d+(:[\w.-]+)?|node:\d+(\.\d+)*-(bookworm|bullseye)-slim)$/;

for (const [name, workspace] of [
  ['gateway', 'gateway'],
  ['shim', 'shim'],
] as const) {
  const rel = `infra/docker/${name}.Dockerfile`;
  describe(rel, () => {
    const stages = parseDockerfile(rel);
    const final = stages.at(-1);
    assert.ok(final);

    it('is multi-stage with a minimal non-root runtime and no build tools in it', () => {
      assert.ok(stages.length >= 2);
      assert.match(final.from, MINIMAL_RUNTIME);
      const user = final.body.filter((i) => i.op === 'USER').at(-1);
      assert.ok(user, 'the final stage sets USER');
      const uid = Number(user.args.split(':')[0]);
      assert.ok(Number.isInteger(uid) && uid > 0, `USER ${user.args} is a numeric non-root uid`);
      assert.deepEqual(
        final.body.filter((i) => i.op === 'RUN'),
        [],
        'nothing is installed or built in the runtime stage',
      );
      for (const s of stages.slice(0, -1)) assert.ok(s.name, `stage FROM ${s.from} is named`);
      // The Node major the addon and the code were built with is the one that runs them.
      const majors = new Set(stages.map((s) => /node(?:js)?:?(\d+)/.exec(s.from)?.[1]));
      assert.equal(majors.size, 1, `one Node major: ${[...majors].join(', ')}`);
    });

    it('defaults to Node 24 (LTS; 20 is past its end of life), on the Debian release it builds on', () => {
      for (const s of stages)
        assert.match(s.from, /^(node:24-bookworm|gcr\.io\/distroless\/nodejs24-debian12)\b/);
      assert.ok(enginesAdmit(24), 'package.json engines admits the image runtime');
    });

    it('copies only files that exist, and only from earlier stages', () => {
      const names = new Set<string>();
      const ignore = readRepo(`${rel}.dockerignore`);
      assert.match(ignore, /\*\*\/node_modules/);
      for (const s of stages) {
        for (const i of s.body.filter((x) => x.op === 'COPY')) {
          const from = /--from=(\S+)/.exec(i.args)?.[1];
          if (from !== undefined) {
            assert.ok(names.has(from), `COPY --from=${from} names an earlier stage`);
            continue;
          }
          for (const src of contextSources(i)) {
            assert.ok(existsSync(repoPath(src)), `${rel}: COPY ${src} exists in the repository`);
            assert.ok(!/(^|\/)(node_modules|dist)(\/|$)/.test(src), `${src} is not a build output`);
          }
        }
        if (s.name) names.add(s.name);
      }
      assert.equal(
        final.body.filter((i) => i.op === 'COPY' && !i.args.includes('--from=')).length,
        0,
        'the runtime takes only built output',
      );
    });

    it('starts the package bin, and ships it', () => {
      const pkg = obj(JSON.parse(readRepo(`${workspace}/package.json`)), 'package.json');
      const bin = str(Object.values(obj(pkg.bin, 'bin'))[0], 'bin');
      const workdir = final.body.filter((i) => i.op === 'WORKDIR').at(-1)?.args ?? '/';
      const entry = final.body.find((i) => i.op === 'ENTRYPOINT');
      assert.ok(entry);
      const argv = JSON.parse(entry.args) as string[];
      assert.equal(argv[1], posix.join(workdir, workspace, bin));
      const copied = final.body
        .filter((i) => i.op === 'COPY')
        .map((i) => posix.join(workdir, i.args.split(/\s+/).at(-1) ?? ''));
      assert.ok(
        copied.some((d) => argv[1]?.startsWith(`${d}/`)),
        `${argv[1]} is copied into the runtime (${copied.join(', ')})`,
      );
      if (workspace === 'shim') {
        // The shim ships its bundle (scripts/bundle-shim.mjs), which holds every dependency it runs.
        assert.ok(copied.includes(posix.join(workdir, 'shim/dist/bundle')), 'the bundle is copied');
        assert.ok(!copied.includes(posix.join(workdir, 'node_modules')), 'no node_modules in the shim image');
      } else {
        assert.ok(copied.includes(posix.join(workdir, 'node_modules')));
      }
    });

    it('compiles with the release config, so no test or test double is built and nothing is deleted', () => {
      const build = stages[0];
      assert.ok(build);
      const runs = build.body.filter((i) => i.op === 'RUN').map((i) => i.args);
      const release = `${workspace}/tsconfig.build.json`;
      assert.ok(
        runs.some((r) => r.includes(`tsc -b ${release}`)),
        `the build stage runs tsc -b ${release}`,
      );
      assert.ok(!runs.some((r) => /\btsc -b \S*(?<!tsconfig\.build\.json)(\s|$)/.test(r)), 'no dev build');
      for (const r of runs) assert.doesNotMatch(r, /-delete|rm -rf \S*dist/, 'no clean-up of build output');
      for (const pkg of ['shared', workspace]) {
        const config = obj(readJsonc(`${pkg}/tsconfig.build.json`), `${pkg}/tsconfig.build.json`);
        assert.equal(
          config.extends,
          './tsconfig.json',
          `${pkg}: the release build is the dev build minus tests`,
        );
        assert.deepEqual(config.exclude, ['src/**/*.test.ts', 'src/testing/**'], `${pkg}: excludes`);
        const info = str(obj(config.compilerOptions, 'compilerOptions').tsBuildInfoFile, 'tsBuildInfoFile');
        assert.ok(!info.startsWith('dist/'), `${pkg}: the build info stays out of the shipped dist`);
        const refs = (config.references ?? []) as { path: string }[];
        for (const r of refs)
          assert.match(r.path, /\/tsconfig\.build\.json$/, `${pkg}: ${r.path} is a release config`);
      }
      const scripts = obj(obj(JSON.parse(readRepo('package.json')), 'package.json').scripts, 'scripts');
      assert.match(str(scripts['build:release'], 'build:release'), new RegExp(`tsc -b .*${release}`));
    });

    it('installs only the production dependencies of its workspace', () => {
      if (workspace === 'shim') {
        // No dependency is installed in the shim image: the build stage bundles them into one file.
        const build = stages[0];
        assert.ok(build?.body.some((i) => i.op === 'RUN' && i.args.includes('node scripts/bundle-shim.mjs')));
        assert.ok(build?.body.some((i) => i.op === 'RUN' && i.args.includes('--ignore-scripts')));
        const closure = prodClosure(workspace);
        assert.ok(!closure.has('pkcs11js'), 'the shim needs no pkcs11js');
        assert.ok(closure.has('@grpc/grpc-js'));
        return;
      }
      const nm = final.body.find((i) => i.op === 'COPY' && /\snode_modules$/.test(i.args));
      assert.ok(nm);
      const stageName = /--from=(\S+)/.exec(nm.args)?.[1];
      const deps = stages.find((s) => s.name === stageName);
      assert.ok(deps);
      const ci = deps.body.find((i) => i.op === 'RUN' && i.args.includes('npm ci'));
      assert.ok(ci, 'npm ci');
      for (const flag of [`--workspace ${workspace}`, '--include-workspace-root=false', '--omit=dev']) {
        assert.ok(ci.args.includes(flag), `npm ci ${flag}`);
      }
      const closure = prodClosure(workspace);
      assert.ok(!closure.has('typescript') && !closure.has('@biomejs/biome'), 'no dev tools');
      assert.ok(closure.has('pkcs11js'), 'the gateway needs pkcs11js');
      assert.ok(!ci.args.includes('--ignore-scripts'), 'pkcs11js builds its addon');
    });
  });
}

describe('infra/docker/dev.Dockerfile', () => {
  const stages = parseDockerfile('infra/docker/dev.Dockerfile');
  it('has SoftHSM2, runs as a non-root user and copies existing files', () => {
    const final = stages.at(-1);
    assert.ok(final);
    assert.ok(final.body.some((i) => i.op === 'RUN' && /apt-get install .*softhsm2/.test(i.args)));
    assert.match(final.from, /^node:24-bookworm$/, 'the runtime the images ship');
    const user = final.body.filter((i) => i.op === 'USER').at(-1);
    assert.ok(user && Number(user.args.split(':')[0]) > 0);
    for (const i of final.body.filter((x) => x.op === 'COPY' && !x.args.includes('--from='))) {
      for (const src of contextSources(i)) assert.ok(existsSync(repoPath(src)), `COPY ${src}`);
    }
  });

  it('copies every project the root tsc -b builds', () => {
    const final = stages.at(-1);
    assert.ok(final);
    const copied = final.body
      .filter((i) => i.op === 'COPY' && !i.args.includes('--from='))
      .flatMap(contextSources)
      .map((src) => src.replace(/\/$/, ''));
    const root = obj(readJsonc('tsconfig.json'), 'tsconfig.json');
    for (const { path } of root.references as { path: string }[]) {
      assert.ok(
        copied.some((c) => path === c || path.startsWith(`${c}/`)),
        `dev.Dockerfile copies ${path} (tsc -b fails on a missing reference)`,
      );
    }
  });
});

describe('supported runtimes (README, docs/development.md, docs/deploy.md)', () => {
  it('engines admits 24 and 22 (supported) and 20 (works, past its end of life)', () => {
    for (const major of [20, 22, 24]) assert.ok(enginesAdmit(major), `engines admits Node ${major}`);
    assert.ok(!enginesAdmit(18), 'engines refuses Node 18');
    for (const doc of ['README.md', 'docs/development.md', 'docs/deploy.md']) {
      assert.match(
        readRepo(doc),
        /Node\.js 24\b[\s\S]{0,160}Node\.js 22\b/,
        `${doc} names Node.js 24 and 22`,
      );
    }
  });
});

describe('images and manifests agree', () => {
  it('the static pod and the chart run the uids and commands the images are built for', () => {
    const pod = readYaml('infra/shim/static-pod.yaml');
    const values = readYaml('infra/helm/keygate-gateway/values.yaml');
    const shimUser = parseDockerfile('infra/docker/shim.Dockerfile')
      .at(-1)
      ?.body.find((i) => i.op === 'USER');
    const gwUser = parseDockerfile('infra/docker/gateway.Dockerfile')
      .at(-1)
      ?.body.find((i) => i.op === 'USER');
    assert.equal(
      Number(shimUser?.args.split(':')[0]),
      obj(obj(pod.spec, 'spec').securityContext, 'sc').runAsUser,
    );
    assert.equal(Number(gwUser?.args.split(':')[0]), values.runAsUser);
    assert.match(
      String(obj(values.image, 'image').nodePath),
      /^\/nodejs\/bin\/node$/,
      'distroless node path',
    );
  });
});
