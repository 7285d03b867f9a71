import { isInstanceId, isKeyId, KeyState } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import type { Hono } from 'hono';
import { html } from 'hono/html';
import { recordRotation } from '../core/fleet/rotations.js';
import type { KeyRecord, KeyVersionRecord } from '../core/keys/key-store.js';
import { runAction } from './console-actions.js';
import { type ConsoleCore, holds, readableInstances } from './console-core.js';
import type { ConsoleCtx, ConsoleEnv } from './console-env.js';
import { badge, csrfField, type Html, notAvailable, page, when } from './layout.js';
import type { Session } from './sessions.js';

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{1,89}$/;

function stateBadge(state: KeyState): Html {
  switch (state) {
    case KeyState.ACTIVE:
      return badge('active', 'ok');
    case KeyState.SUSPENDED:
      return badge('disabled', 'warn');
    case KeyState.DESTROYED:
      return badge('destroyed', 'bad');
    default:
      return badge(String(state), 'muted');
  }
}

/** A version's own state, when the store records one (version disable/enable). */
function versionDisabled(v: KeyVersionRecord): boolean {
  return 'disabled' in v && (v as { disabled?: unknown }).disabled === true;
}

function post(session: Session, action: string, label: string, cls = ''): Html {
  return html`<form class="inline" method="post" action="${action}">${csrfField(session)}<button type="submit"${cls === '' ? '' : html` class="${cls}"`}>${label}</button></form>`;
}

function keyRow(core: ConsoleCore, session: Session, admin: boolean, k: KeyRecord): Html {
  const base = `/keys/${encodeURIComponent(k.instance)}/${encodeURIComponent(k.id)}`;
  const live = k.state !== KeyState.DESTROYED;
  const versions = [...k.versions].reverse();
  const current = versions[0]?.id;
  return html`<tr>
<td><strong>${k.name}</strong><br><code>${k.id}</code></td>
<td>${stateBadge(k.state)}</td>
<td><ul class="versions">${versions.map(
    (
      v,
    ) => html`<li><code>${v.id}</code> ${v.id === current ? badge('current', 'ok') : ''}${versionDisabled(v) ? badge('disabled', 'warn') : ''} <span class="muted">${when(v.creationDate)}</span>
${
  admin && live && v.id !== current && core.deps.versions !== undefined
    ? versionDisabled(v)
      ? post(session, `${base}/versions/${encodeURIComponent(v.id)}/enable`, `Enable version`)
      : post(session, `${base}/versions/${encodeURIComponent(v.id)}/disable`, `Disable version`)
    : ''
}</li>`,
  )}</ul></td>
<td>${when(k.lastUpdateDate)}</td>
<td>${
    admin && live
      ? html`<div class="actions">${post(session, `${base}/rotate`, 'Rotate', 'primary')}
${k.state === KeyState.ACTIVE ? post(session, `${base}/disable`, 'Disable') : post(session, `${base}/enable`, 'Enable')}
<a href="${base}/destroy">Destroy…</a> <a href="/rotation?k=${encodeURIComponent(`${k.instance}/${k.id}`)}">Rotation</a></div>`
      : html`<span class="muted">${live ? 'read only' : '—'}</span>`
  }</td>
</tr>`;
}

async function keysPage(c: ConsoleCtx, core: ConsoleCore): Promise<Html> {
  const identity = c.get('identity');
  const session = c.get('session');
  const instances = readableInstances(identity);
  const adminOf = instances.filter((i) => holds(identity, i, 'keys:admin'));
  const sections = await Promise.all(
    instances.map(async (instance) => {
      const keys = await core.deps.keys.list(instance);
      const admin = adminOf.includes(instance);
      return html`<h2>Instance <code>${instance}</code></h2>
<table><caption>Root keys of ${instance} (${keys.length})</caption>
<thead><tr><th scope="col">Name and id</th><th scope="col">State</th><th scope="col">Versions (newest first)</th><th scope="col">Last change</th><th scope="col">Actions</th></tr></thead>
<tbody>${keys.length === 0 ? html`<tr><td colspan="5" class="muted">No keys.</td></tr>` : keys.map((k) => keyRow(core, session, admin, k))}</tbody></table>`;
    }),
  );
  return page(
    { title: 'Keys', current: '/keys', session },
    html`<h1>Keys</h1>
${
  adminOf.length === 0
    ? html`<p class="muted">${identity.name} holds keys:admin on no instance: keys are read only.</p>`
    : html`<form method="post" action="/keys/create"><fieldset><legend>Create a root key</legend>
${csrfField(session)}
<div class="field"><label for="new-instance">Instance</label><select id="new-instance" name="instance">${adminOf.map((i) => html`<option>${i}</option>`)}</select></div>
<div class="field"><label for="new-name">Name</label><input id="new-name" name="name" required minlength="2" maxlength="90" pattern="[A-Za-z0-9][A-Za-z0-9 ._\\-]*"></div>
<div class="field"><label for="new-description">Description (optional)</label><input id="new-description" name="description" maxlength="240"></div>
<button class="primary" type="submit">Create key</button></fieldset></form>`
}
${core.deps.versions === undefined ? notAvailable('Disabling and enabling single key versions needs a gateway with guided rotation.') : ''}
${instances.length === 0 ? html`<p>${identity.name} may read the keys of no instance.</p>` : sections}`,
  );
}

function destroyPage(c: ConsoleCtx, key: KeyRecord): Html {
  const session = c.get('session');
  const base = `/keys/${encodeURIComponent(key.instance)}/${encodeURIComponent(key.id)}`;
  return page(
    { title: `Destroy ${key.name}`, current: '/keys', session },
    html`<h1>Destroy root key <code>${key.name}</code></h1>
<p class="bad"><strong>This cannot be undone.</strong> Every version of <code>${key.id}</code> in instance <code>${key.instance}</code> is deleted from the HSM: data encrypted under it can never be decrypted again.</p>
<form method="post" action="${base}/destroy">${csrfField(session)}
<div class="field"><label for="confirm">Type the key's name, <code>${key.name}</code>, to confirm</label>
<input id="confirm" name="confirm" required autocomplete="off"></div>
<p class="actions"><button class="danger" type="submit">Destroy key</button> <a href="/keys">Cancel</a></p></form>`,
  );
}

/** The key's instance and id from the path, validated (KEY_NOT_FOUND_ERR when malformed). */
function keyRef(c: ConsoleCtx): { instance: string; id: string } {
  const instance = c.req.param('instance');
  const id = c.req.param('id');
  if (!isInstanceId(instance) || !isKeyId(id)) throw new KeygateError('KEY_NOT_FOUND_ERR');
  return { instance, id };
}

async function field(c: ConsoleCtx, name: string): Promise<string> {
  const v = (await c.req.parseBody())[name];
  return typeof v === 'string' ? v.trim() : '';
}

/** The keys page and its actions. */
export function registerKeyPages(app: Hono<ConsoleEnv>, core: ConsoleCore): void {
  const keys = core.deps.keys;
  app.get('/keys', async (c) => c.html(await keysPage(c, core)));

  app.post('/keys/create', async (c) => {
    const instance = await field(c, 'instance');
    const name = await field(c, 'name');
    const description = await field(c, 'description');
    return runAction(c, core, 'key.create', { instance }, '/keys', async () => {
      if (!isInstanceId(instance))
        throw new KeygateError('INVALID_FIELD_ERR', { detail: { field: 'instance' } });
      if (!KEY_NAME.test(name)) throw new KeygateError('INVALID_FIELD_ERR', { detail: { field: 'name' } });
      if (description.length > 240)
        throw new KeygateError('INVALID_FIELD_ERR', { detail: { field: 'description' } });
      const k = await keys.create({
        instance,
        name,
        description: description === '' ? undefined : description,
      });
      return { keyId: k.id, keyVersion: k.versions[0]?.id, message: `Created key ${k.name} (${k.id}).` };
    });
  });

  app.post('/keys/:instance/:id/rotate', async (c) => {
    const ref = keyRef(c);
    return runAction(c, core, 'key.rotate', { instance: ref.instance, keyId: ref.id }, '/keys', async () => {
      const k = await keys.rotate(ref.instance, ref.id);
      const to = k.versions[k.versions.length - 1]?.id ?? '';
      // Recorded like the API's and the CLI's rotations, so the Rotation page follows it.
      await recordRotation(
        core.deps.fleet,
        core.deps.logger,
        k,
        `console:${c.get('identity').name}`,
        core.deps.clock.now(),
      );
      return {
        keyVersion: to,
        message: `Rotated ${k.name}: new version ${to}. Follow it on the Rotation page.`,
      };
    });
  });

  for (const [path, op, enable] of [
    ['disable', 'key.disable', false],
    ['enable', 'key.enable', true],
  ] as const) {
    app.post(`/keys/:instance/:id/${path}`, async (c) => {
      const ref = keyRef(c);
      return runAction(c, core, op, { instance: ref.instance, keyId: ref.id }, '/keys', async () => {
        const k = enable ? await keys.enable(ref.instance, ref.id) : await keys.disable(ref.instance, ref.id);
        return { message: `${enable ? 'Enabled' : 'Disabled'} ${k.name}.` };
      });
    });
  }

  app.get('/keys/:instance/:id/destroy', async (c) => {
    const ref = keyRef(c);
    if (!holds(c.get('identity'), ref.instance, 'keys:admin')) throw new KeygateError('FORBIDDEN_ERR');
    return c.html(destroyPage(c, await keys.get(ref.instance, ref.id)));
  });

  app.post('/keys/:instance/:id/destroy', async (c) => {
    const ref = keyRef(c);
    const confirm = await field(c, 'confirm');
    return runAction(c, core, 'key.destroy', { instance: ref.instance, keyId: ref.id }, '/keys', async () => {
      const k = await keys.get(ref.instance, ref.id);
      if (confirm !== k.name) {
        throw new KeygateError('INVALID_FIELD_ERR', {
          detail: { field: 'confirm', reason: 'name not typed' },
        });
      }
      await keys.destroy(ref.instance, ref.id);
      return { message: `Destroyed ${k.name} (${k.id}).` };
    });
  });

  for (const [path, enable] of [
    ['disable', false],
    ['enable', true],
  ] as const) {
    app.post(`/keys/:instance/:id/versions/:version/${path}`, async (c) => {
      const ref = keyRef(c);
      const version = c.req.param('version');
      const admin = core.deps.versions;
      // Audited as the API's POST …/versions/{version}/actions/disable|enable are.
      const op = enable ? 'key.version.enable' : 'key.version.disable';
      return runAction(c, core, op, { instance: ref.instance, keyId: ref.id }, '/keys', async () => {
        if (admin === undefined) throw new KeygateError('NOT_FOUND_ERR', { detail: { reason: 'versions' } });
        if (!isKeyId(version)) throw new KeygateError('INVALID_FIELD_ERR', { detail: { field: 'version' } });
        if (enable) await admin.enableVersion(ref.instance, ref.id, version);
        else await admin.disableVersion(ref.instance, ref.id, version, { force: false });
        return { keyVersion: version, message: `${enable ? 'Enabled' : 'Disabled'} version ${version}.` };
      });
    });
  }
}
