'use strict';
// The bundle's `undici`: the part the shim uses (Agent, request, Dispatcher, errors), built as
// undici's own index.js builds it, without what its index also loads at start and the shim never
// uses (fetch, WebSocket, EventSource, the mock and cache modules, the proxy agents).
// scripts/bundle-shim.mjs fails the build when the shim imports any other name from 'undici'.
const Dispatcher = require('undici/lib/dispatcher/dispatcher');
const Agent = require('undici/lib/dispatcher/agent');
const api = require('undici/lib/api');
const errors = require('undici/lib/core/errors');
const util = require('undici/lib/core/util');
const { getGlobalDispatcher, setGlobalDispatcher } = require('undici/lib/global');

Object.assign(Dispatcher.prototype, api);

/** undici's makeDispatcher (index.js), with locals instead of reassigned parameters. */
function makeDispatcher(fn) {
  return (urlIn, optsIn, handlerIn) => {
    const handler = typeof optsIn === 'function' ? optsIn : handlerIn;
    let opts = typeof optsIn === 'function' ? null : optsIn;
    if (!urlIn || (typeof urlIn !== 'string' && typeof urlIn !== 'object' && !(urlIn instanceof URL))) {
      throw new errors.InvalidArgumentError('invalid url');
    }
    if (opts != null && typeof opts !== 'object') {
      throw new errors.InvalidArgumentError('invalid opts');
    }
    let url;
    if (opts?.path != null) {
      if (typeof opts.path !== 'string') {
        throw new errors.InvalidArgumentError('invalid opts.path');
      }
      const path = opts.path.startsWith('/') ? opts.path : `/${opts.path}`;
      url = new URL(util.parseOrigin(urlIn).origin + path);
    } else {
      if (!opts) {
        opts = typeof urlIn === 'object' ? urlIn : {};
      }
      url = util.parseURL(urlIn);
    }
    const { agent, dispatcher = getGlobalDispatcher() } = opts;
    if (agent) {
      throw new errors.InvalidArgumentError('unsupported opts.agent. Did you mean opts.client?');
    }
    return fn.call(
      dispatcher,
      {
        ...opts,
        origin: url.origin,
        path: url.search ? `${url.pathname}${url.search}` : url.pathname,
        method: opts.method || (opts.body ? 'PUT' : 'GET'),
      },
      handler,
    );
  };
}

module.exports.Dispatcher = Dispatcher;
module.exports.Agent = Agent;
module.exports.errors = errors;
module.exports.setGlobalDispatcher = setGlobalDispatcher;
module.exports.getGlobalDispatcher = getGlobalDispatcher;
module.exports.request = makeDispatcher(api.request);
