import type { HttpBindings } from '@hono/node-server';
import type { Logger } from '@keygate/shared/log';
import type { Context } from 'hono';

/** Per-request values every handler can read. */
export interface RequestVars {
  requestId: string;
  correlationId: string | undefined;
  log: Logger;
  /** When the caller stops waiting (ms since the epoch, deps.clock), from `x-keygate-timeout-ms`. */
  deadlineAt: number | undefined;
}

/** The hono environment of the gateway app (Node bindings give the TLS socket). */
export interface GatewayEnv {
  Bindings: HttpBindings;
  Variables: RequestVars;
}

export type Ctx = Context<GatewayEnv>;
