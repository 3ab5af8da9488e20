// Type declarations for busd, the Node.js client of the busd event bus
// (BUSP/1, doc/protocol.md). See README.md for the behaviour behind them.

import { EventEmitter } from 'node:events'

export const DEFAULT_ENDPOINT: 'tcp://127.0.0.1:7460'
/** The PROTOCOL §8 features the client asks for in HELLO. */
export const FEATURES: readonly ['batch', 'error-context']

/** CURVE keys as 40-character Z85 strings. */
export interface CurveOptions {
  /** The broker's public key (required). */
  serverKey: string
  /** This client's key pair; a fresh one is made when omitted. */
  publicKey?: string
  secretKey?: string
}

export interface ConnectOptions {
  /** Used when `connect` is called with the options only. */
  endpoint?: string
  /** client_name in HELLO: shown by `busd-ctl clients`, used in x-subscription. Default "node". */
  name?: string
  curve?: CurveOptions
  /** Reconnect after ERROR 401/503 or a silent broker (default true). */
  reconnect?: boolean
  /** Milliseconds to wait for the first WELCOME (default 5000); then BusdError 408. */
  connectTimeout?: number
  /** Default `timeout` for publish(), ms; 0 (default) waits as long as it takes. */
  publishTimeout?: number
  /** Default `timeout` for ctl(), ms (default 10000). */
  ctlTimeout?: number
  /** Events that may wait locally for publisher credit (default 100000); beyond, publish rejects with 429. */
  maxQueue?: number
  /** false: do not ask for the `batch` feature. */
  batch?: boolean
  /** The features to ask for (default FEATURES, without 'batch' when batch is false). */
  features?: string[]
}

export interface PublishOptions {
  /** msg_id: the broker drops a repeat within its dedup window. At most 255 bytes. */
  id?: string | Buffer
  /** Header values must be strings. A Buffer or string is sent as the headers frame as is. */
  headers?: Record<string, string> | Buffer | string
  /** Reject with BusdError 408 when not acknowledged within this many ms (0: no limit). */
  timeout?: number
}

export type Overflow = 'block' | 'drop-oldest' | 'drop-new' | 'latest' | 'disconnect'
export type From = 'new' | 'first' | 'last' | { seq: number | bigint } | { time: string }

export interface SubscribeOptions {
  group?: string
  /** Default 'explicit' with a handler, 'none' for an async iterator. */
  ack?: 'none' | 'explicit'
  /** The credit window (default 100 for an explicit handler, else 1000); topped up as events finish. */
  credit?: number
  overflow?: Overflow
  queue_limit?: number
  max_deliver?: number
  ack_wait_ms?: number
  durable?: string
  from?: From
  /** Handlers of this subscription running at once (default 1). */
  concurrency?: number
  /** Any other key is passed to the broker as a SUB option. */
  [option: string]: unknown
}

export class Event {
  readonly topic: string
  readonly payload: Buffer
  /** '' when the publisher gave none. */
  readonly msgId: string
  /** 1 on the first delivery. */
  readonly attempt: number
  readonly deliveryId: bigint
  /** 0n when no durable stream holds the event. */
  readonly streamSeq: bigint
  /** The broker's acceptance time, µs since the Unix epoch. */
  readonly ts: bigint
  readonly subId: number
  /** The publisher's headers ({} when none). */
  readonly headers: Record<string, string>
  readonly rawHeaders: Buffer | null
  /** ts as a Date (millisecond precision). */
  readonly time: Date
  text (): string
  /** JSON.parse of the payload; integers beyond 2^53 become BigInt. */
  json<T = any> (): T
  /** Acknowledge by hand (explicit ack). Returns whether an ACK was sent. */
  ack (): boolean
  /** Ask for a redelivery after delayMs (0: the broker's backoff). */
  nack (options?: { delayMs?: number, reason?: string }): boolean
  /** Dead-letter at once with this reason. */
  deadLetter (reason?: string): boolean
}

export type Handler = (event: Event) => unknown | Promise<unknown>

export class Subscription extends EventEmitter implements AsyncIterableIterator<Event> {
  readonly id: number
  readonly pattern: string
  readonly options: SubscribeOptions
  /** SUBOK info, once confirmed. */
  readonly info: Record<string, any> | null
  readonly state: 'pending' | 'live' | 'ending' | 'ended'
  /** Events the broker reported dropped (GAP), in total. */
  readonly gaps: bigint
  readonly endCode: number
  readonly endReason: string
  /** The credit window. */
  readonly credit: number
  /** Resolves on SUBOK, rejects with BusdError when the broker refuses the SUB. */
  readonly ready: Promise<Subscription>
  /** Grant n more credit (for subscriptions that pace themselves with credit: 0). */
  addCredit (n: number): void
  /** Waits for running handlers, sends UNSUB, resolves on SUBEND. */
  unsubscribe (): Promise<void>
  next (): Promise<IteratorResult<Event>>
  return (): Promise<IteratorResult<Event>>
  [Symbol.asyncIterator] (): AsyncIterableIterator<Event>
  on (event: 'gap', listener: (dropped: bigint) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
}

export interface ReconnectInfo {
  brokerId: string
  /** The broker restarted (another broker_id). */
  brokerChanged: boolean
  reconnects: number
}

export class Bus extends EventEmitter {
  readonly endpoint: string
  readonly name: string
  readonly state: 'connecting' | 'ready' | 'closed'
  readonly brokerId: string | null
  /** WELCOME info (session_timeout_ms, heartbeat_ms, max_headers, ...). */
  readonly info: Record<string, any>
  /** The features in force for this session (asked for and offered). */
  readonly features: string[]
  readonly maxPayload: number
  /** pub_credit from WELCOME. */
  readonly pubWindow: number
  readonly reconnects: number
  /** Publishes acknowledged / rejected by the broker. */
  readonly accepted: number
  readonly rejected: number

  /** Resolves on PUBACK; rejects with BusdError on REJECT, a local check, timeout (408) or close (503). */
  publish (topic: string | Buffer, payload?: Buffer | Uint8Array | string | unknown, options?: PublishOptions): Promise<void>
  /** Resolves when every publish made so far is settled. */
  flush (): Promise<void>
  subscribe (pattern: string, handler: Handler, options?: SubscribeOptions): Promise<Subscription>
  subscribe (pattern: string, options?: SubscribeOptions): Subscription
  ctl (request: string | Record<string, unknown>, options?: { timeout?: number }): Promise<Record<string, any>>
  /** Waits (at most timeout ms, default 5000) for PUBACKs and running handlers, then BYE. */
  close (options?: { timeout?: number }): Promise<void>

  on (event: 'gap', listener: (sub: Subscription, dropped: bigint) => void): this
  on (event: 'reconnect', listener: (info: ReconnectInfo) => void): this
  on (event: 'subend', listener: (sub: Subscription, code: number, reason: string) => void): this
  on (event: 'error', listener: (error: Error) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
}

export function connect (endpoint?: string, options?: ConnectOptions): Promise<Bus>
export function connect (options: ConnectOptions): Promise<Bus>

export class BusdError extends Error {
  /** The protocol's code: 400, 403, 404, 408, 409, 413, 429, 500, 503. */
  readonly code: number
  readonly reason: string
  /** REJECT: { pubSeq, topic }; ERROR with error-context: the broker's JSON; CTLREPLY: the reply. */
  readonly context?: any
  constructor (code: number, reason: string, context?: any)
}

export class DeadLetter extends Error {
  readonly reason: string
  constructor (reason?: string)
}
