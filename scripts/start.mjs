#!/usr/bin/env node
// `npm start`: the whole keygate stack on embedded defaults — a gateway (SoftHSM2 when installed,
// else the software backend) and a shim — with state under .keygate/dev (or $KEYGATE_HOME).
// `npm start -- --reset` starts over. Ctrl-C stops both and removes the socket.
import { resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--reset');
if (unknown.length > 0) {
  console.error(`usage: npm start [-- --reset]   (unknown: ${unknown.join(' ')})`);
  process.exit(2);
}
// Read here, the one place the dev stack takes settings from the environment.
const home = resolve(process.env.KEYGATE_HOME ?? `${root}.keygate/dev`);
const portFrom = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  if (!/^\d+$/.test(v) || Number(v) > 65535) {
    console.error(`keygate: ${name}=${v} is not a port number (0 = any free port)`);
    process.exit(2);
  }
  return Number(v);
};
const gatewayPort = portFrom('KEYGATE_GATEWAY_PORT', 28443);
const healthzPort = portFrom('KEYGATE_HEALTHZ_PORT', 20358);
const consolePort = portFrom('KEYGATE_CONSOLE_PORT', 28444);
const { startDevStack } = await import('../tools/devstack/dist/devstack.js');

const colour = { gateway: '\x1b[36m', shim: '\x1b[35m' };
const echo = (name) => (line) => {
  let msg = line;
  try {
    const j = JSON.parse(line);
    const { level, ts, svc, msg: text, ...rest } = j;
    msg = `${level.padEnd(5)} ${text}${Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : ''}`;
  } catch {}
  const c = process.stdout.isTTY ? colour[name] : '';
  console.log(`${c}[${name}]${c ? '\x1b[0m' : ''} ${msg}`);
};

let stack;
try {
  console.log(
    `keygate: starting the development stack in ${home}${args.includes('--reset') ? ' (reset)' : ''}`,
  );
  stack = await startDevStack({
    home,
    reset: args.includes('--reset'),
    gatewayPort,
    healthzPort,
    consolePort,
    // Each line arrives with the program that printed it: label by that, never by what it says.
    echo: (line, program) => echo(program)(line),
  });
} catch (err) {
  console.error(`keygate: the stack did not start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
// Ctrl-C works from the moment the stack runs, before the ready lines are printed.
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nkeygate: stopping shim and gateway');
    await stack.stop();
    process.exit(0);
  });
}

const i = stack.info;
// The gateway and the shim run on this same Node (process.execPath): say which, and when it is 20,
// that it is past its end of life (docs/development.md, "Runtimes").
const major = Number(process.versions.node.split('.')[0]);
const runtime = `Node.js ${process.version}${major < 22 ? ' (past its end of life: use 24 or 22)' : ''}`;
console.log(
  `\nkeygate ready on ${runtime}: socket ${i.socket} · health ${i.healthzUrl} · gateway ${i.gatewayUrl} · console ${i.consoleUrl} (log in with the API key in ${i.adminApiKeyFile}) · EncryptionConfiguration ${i.encryptionConfig}`,
);
console.log(
  `  HSM: ${i.hsm === 'softhsm2' ? 'SoftHSM2 (PKCS#11)' : 'software backend (development only: no HSM)'}`,
);
console.log(
  `  operator ops-admin (keys:admin): certificate ${i.adminCertFile} · key ${i.adminKeyFile} · API key file ${i.adminApiKeyFile}`,
);
console.log(`  details: ${home}/stack.json · try: npm run demo · stop: Ctrl-C\n`);
