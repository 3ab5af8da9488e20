// client.js — one BUSP/1 session over one zeromq.js DEALER socket.
//
// The shape follows libbusd (src/lib/client.c): a single reader loop acts
// on everything the broker sends (PUBACKs settle publish promises,
// DELIVERs feed subscriptions, PINGs are answered, a lost session is
// noticed), so no application call can starve another and a slow handler
// never holds up heartbeats — handlers run as promises beside the loop.
//
// Recovery keeps the application's view stable: on ERROR 401, ERROR 503 or
// a silent broker the client says HELLO again (on a fresh socket when the
// old connection may be dead), then re-sends every SUB with its sub_id and
// every publish not yet acknowledged with its msg_id under new pub_seqs.
// Each delivery remembers the session ("epoch") it came in; an ACK, NACK
// or CREDIT for a delivery of an ended session is never sent, because
// delivery_ids restart at 1 and would name a new session's delivery.
//
// Outgoing traffic goes through one writer per socket (zeromq.js allows a
// single send in flight). PUBs, ACKs and CREDITs are gathered and sent at
// setImmediate, so a burst becomes one PUBB / ACKB (PROTOCOL §8.2) when the
// broker enabled the `batch` feature, and plain PUB / ACK messages when not.

import { EventEmitter } from 'node:events'
import { Dealer, curveKeyPair } from 'zeromq'
import {
  CMD, decode, parseJson, stringifyJson, bytes,
  encodeHello, encodePub, encodePubb, pubRecordSize, encodeSub, encodeUnsub,
  encodeCredit, encodeAck, encodeAckb, encodeNack, encodePing, encodePong,
  encodeBye, encodeCtl, NACK_REDELIVER, NACK_DEAD_LETTER,
} from './codec.js'
import { topicError, patternError } from './topic.js'
import { BusdError, DeadLetter } from './errors.js'

export const DEFAULT_ENDPOINT = 'tcp://127.0.0.1:7460'
export const FEATURES = Object.freeze(['batch', 'error-context'])

const DEFAULT_CONNECT_TIMEOUT_MS = 5000
const DEFAULT_CTL_TIMEOUT_MS = 10000
const DEFAULT_CLOSE_TIMEOUT_MS = 5000
const DEFAULT_MAX_QUEUE = 100000
const DEFAULT_SESSION_TIMEOUT_MS = 15000
const DEFAULT_HEARTBEAT_MS = 5000
const DEFAULT_ACK_WAIT_MS = 30000
const DEFAULT_CREDIT = 1000 // the broker's default for SUB
const DEFAULT_HANDLER_CREDIT = 100 // explicit ack: fewer events wait locally past ack_wait_ms
const HELLO_RETRY_MIN_MS = 1000
const HELLO_RETRY_MAX_MS = 8000
const TICK_MS = 250
const LINGER_MS = 500 // long enough for BYE to leave
const RECONNECT_IVL_MS = 100
const CLIENT_ONLY_OPTIONS = new Set(['concurrency'])
const EMPTY = Buffer.alloc(0)

// An array used as a FIFO without O(n) shifts.
class Deque {
  constructor () { this.a = []; this.h = 0 }
  get length () { return this.a.length - this.h }
  push (x) { this.a.push(x) }
  peek () { return this.a[this.h] }
  at (i) { return this.a[this.h + i] }
  shift () {
    const x = this.a[this.h]
    this.a[this.h++] = undefined
    if (this.h > 1024 && this.h * 2 > this.a.length) { this.a = this.a.slice(this.h); this.h = 0 }
    return x
  }

  takeAll () { const rest = this.a.slice(this.h); this.a = []; this.h = 0; return rest }
}

function headersBytes (headers, maxHeaders) {
  if (headers === undefined || headers === null) return null
  let buf
  if (Buffer.isBuffer(headers) || typeof headers === 'string') {
    buf = bytes(headers)
  } else if (typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers)) {
      if (typeof v !== 'string') {
        throw new BusdError(400, `header "${k}" is a ${typeof v}; header values must be strings`)
      }
    }
    buf = Buffer.from(JSON.stringify(headers), 'utf8')
  } else {
    throw new BusdError(400, 'headers must be an object of strings')
  }
  if (maxHeaders > 0 && buf.length > maxHeaders) {
    throw new BusdError(413, `headers are ${buf.length} bytes; the broker takes at most ${maxHeaders}`)
  }
  return buf.length ? buf : null
}

function payloadBytes (payload) {
  if (payload === undefined) return EMPTY
  if (Buffer.isBuffer(payload)) return payload
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8')
  return Buffer.from(stringifyJson(payload), 'utf8')
}

function timeoutError (what, ms) {
  return new BusdError(408, `${what} within ${ms} ms`)
}

// ---------------------------------------------------------------- Event

// One delivery. Fields are the DELIVER's; u64 fields are BigInt. The
// bookkeeping lives in private fields so that logging an event shows the
// event.
export class Event {
  #sub
  #epoch
  #raw
  #headers
  #at
  #settled = false

  constructor (sub, rec, epoch) {
    this.topic = rec.topic
    this.payload = rec.payload
    this.msgId = rec.msgId
    this.attempt = rec.attempt
    this.deliveryId = rec.deliveryId
    this.streamSeq = rec.streamSeq
    this.ts = rec.tsUs
    this.subId = sub.id
    this.#sub = sub
    this.#epoch = epoch
    this.#raw = rec.headers
    this.#at = Date.now()
  }

  // The publisher's headers as an object ({} when none).
  get headers () {
    if (this.#headers === undefined) {
      this.#headers = this.#raw ? JSON.parse(this.#raw.toString('utf8')) : {}
    }
    return this.#headers
  }

  // The headers frame exactly as the publisher sent it (null when none).
  get rawHeaders () { return this.#raw }
  get time () { return new Date(Number(this.ts / 1000n)) }
  text () { return this.payload.toString('utf8') }
  json () { return parseJson(this.payload.toString('utf8')) }

  // Explicit acknowledgement by hand (a handler's outcome does this for
  // you; an async iterator over an `ack: 'explicit'` subscription must).
  ack () { return this.#sub._settle(this, 'ack') }
  nack ({ delayMs = 0, reason } = {}) { return this.#sub._settle(this, 'nack', { delayMs, reason }) }
  deadLetter (reason) { return this.#sub._settle(this, 'dead', { reason }) }

  get _epoch () { return this.#epoch }
  get _receivedAt () { return this.#at }
  get _settled () { return this.#settled }
  set _settled (v) { this.#settled = v }
}

// ---------------------------------------------------------------- Subscription

export class Subscription extends EventEmitter {
  constructor (bus, id, pattern, handler, options) {
    super()
    this.id = id
    this.pattern = pattern
    this.options = { ...options }
    this.info = null
    this.state = 'pending' // pending | live | ending | ended
    this.gaps = 0n
    this.endCode = 0
    this.endReason = ''
    this._bus = bus
    this._handler = handler
    this._concurrency = Math.max(1, options.concurrency ?? 1)
    const wire = {}
    for (const [k, v] of Object.entries(options)) {
      if (!CLIENT_ONLY_OPTIONS.has(k) && v !== undefined) wire[k] = v
    }
    if (wire.ack === undefined && wire.durable === undefined && handler) wire.ack = 'explicit'
    this._explicit = wire.ack === 'explicit' || (wire.durable !== undefined && wire.ack === undefined)
    if (typeof wire.credit === 'number' && Number.isInteger(wire.credit) && wire.credit >= 0) {
      this._window = wire.credit
    } else if (wire.credit === undefined) {
      this._window = handler && this._explicit ? Math.max(DEFAULT_HANDLER_CREDIT, this._concurrency) : DEFAULT_CREDIT
    } else {
      this._window = DEFAULT_CREDIT // the broker refuses it, naming the key
    }
    delete wire.credit
    this._wire = wire
    this._ackWaitMs = typeof wire.ack_wait_ms === 'number' ? wire.ack_wait_ms : DEFAULT_ACK_WAIT_MS
    this._patternBuf = bytes(pattern)
    this._sentEpoch = -1 // the session that last got our SUB
    this._consumed = 0 // credit earned back, not yet sent
    this._local = 0 // deliveries here not yet finished
    this._queue = new Deque() // waiting for a handler, or for the iterator
    this._running = 0
    this._waiters = [] // iterator next() calls waiting for an event
    this._idle = [] // resolvers waiting for running === 0
    this._endError = null
    this._unsub = null
    this.ready = new Promise((resolve, reject) => { this._readyResolve = resolve; this._readyReject = reject })
    this.ready.catch(() => {}) // the iterator or subscribe() reports it
  }

  get credit () { return this._window }

  _threshold () { return Math.max(1, Math.floor(this._window / 2)) }

  // A delivery arrived for us (never while ending or ended).
  _push (rec, epoch) {
    const ev = new Event(this, rec, epoch)
    this._local++
    if (this._handler) {
      this._queue.push(ev)
      this._drive()
    } else if (this._waiters.length) {
      this._waiters.shift().resolve(this._yield(ev))
    } else {
      this._queue.push(ev)
    }
  }

  _yield (ev) {
    if (!this._explicit) {
      ev._settled = true
      this._finished()
    }
    return { value: ev, done: false }
  }

  _drive () {
    while (this._running < this._concurrency && this._queue.length &&
           (this.state === 'live' || this.state === 'pending') && !this._bus._closing) {
      const ev = this._queue.shift()
      if (this._explicit && Date.now() - ev._receivedAt > this._ackWaitMs) {
        // The broker has given up on this delivery and sends it again;
        // running it now would only run it twice.
        ev._settled = true
        this._finished()
        continue
      }
      this._running++
      this._run(ev)
    }
  }

  async _run (ev) {
    let error = null
    try {
      await this._handler(ev)
    } catch (err) {
      error = err === null || err === undefined ? new Error('handler threw ' + err) : err
    }
    this._running--
    if (!ev._settled) {
      if (!this._explicit) {
        ev._settled = true
        if (error) this._bus._report(error)
        this._finished()
      } else if (!error) {
        this._settle(ev, 'ack')
      } else if (error instanceof DeadLetter || error.name === 'DeadLetter') {
        this._settle(ev, 'dead', { reason: error.reason ?? error.message })
      } else {
        const delayMs = Number.isInteger(error.retryDelayMs) ? error.retryDelayMs : 0
        this._settle(ev, 'nack', { delayMs })
      }
    }
    if (this._running === 0) {
      const idle = this._idle
      this._idle = []
      for (const resolve of idle) resolve()
    }
    this._drive()
  }

  // ACK, NACK or dead-letter a delivery, once. Returns whether it was sent
  // (false for a delivery of an ended session or subscription).
  _settle (ev, kind, opts = {}) {
    if (ev._settled) return false
    ev._settled = true
    const bus = this._bus
    let sent = false
    if (this._explicit && ev._epoch === bus._epoch && bus._state === 'ready' &&
        this._sentEpoch === bus._epoch && (this.state === 'live' || this.state === 'pending' ||
        (this.state === 'ending' && !this._unsubSent))) {
      if (kind === 'ack') {
        bus._queueAck(this.id, ev.deliveryId)
      } else {
        const action = kind === 'dead' ? NACK_DEAD_LETTER : NACK_REDELIVER
        const delay = Math.max(0, Math.min(0xffffffff, Math.floor(opts.delayMs || 0)))
        const frames = [encodeNack(this.id, ev.deliveryId, action, delay)]
        if (opts.reason !== undefined && opts.reason !== null) {
          frames.push(Buffer.from(JSON.stringify({ reason: String(opts.reason) }), 'utf8'))
        }
        bus._flushAcks() // keep this delivery's ACKs and NACKs in the order they happened
        bus._send(frames)
      }
      sent = true
    }
    this._finished()
    return sent
  }

  // One delivery is done with: earn its credit back.
  _finished () {
    this._local--
    if (this.state !== 'live' && this.state !== 'pending') return
    this._consumed++
    if (this._consumed >= this._threshold()) this._bus._queueCredit(this)
  }

  // Grant more credit by hand (for `credit: 0` subscriptions that pace
  // themselves).
  addCredit (n) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError('credit must be a positive integer')
    this._window += n
    this._consumed += n
    this._bus._queueCredit(this)
  }

  // ---------------------------------------------------------------- async iterator

  [Symbol.asyncIterator] () { return this }

  next () {
    if (this._queue.length) return Promise.resolve(this._yield(this._queue.shift()))
    if (this.state === 'ended' || this.state === 'ending') {
      if (this._endError) { const e = this._endError; this._endError = null; return Promise.reject(e) }
      return Promise.resolve({ value: undefined, done: true })
    }
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }))
  }

  async return () {
    await this.unsubscribe()
    return { value: undefined, done: true }
  }

  // ---------------------------------------------------------------- ending

  // UNSUB, after the running handlers have finished (so their ACKs reach
  // the broker first). Events waiting here and not started are dropped: a
  // group's broker hands them to another member. Resolves on SUBEND.
  unsubscribe () {
    if (this._unsub) return this._unsub
    if (this.state === 'ended') return (this._unsub = Promise.resolve())
    this.state = 'ending'
    this._dropQueued()
    this._wakeIterators()
    this._unsub = (async () => {
      if (this._running) await new Promise((resolve) => this._idle.push(resolve))
      if (this.state === 'ended') return
      await new Promise((resolve) => {
        this._unsubResolve = resolve
        this._bus._sendUnsub(this)
      })
    })()
    return this._unsub
  }

  _dropQueued () {
    while (this._queue.length) {
      const ev = this._queue.shift()
      ev._settled = true
      this._local--
    }
  }

  _wakeIterators () {
    const waiters = this._waiters
    this._waiters = []
    for (const w of waiters) {
      if (this._endError) { w.reject(this._endError); this._endError = null } else w.resolve({ value: undefined, done: true })
    }
  }

  // The subscription is over: SUBEND, a refused SUB, or the client closed.
  _end (code, reason, error) {
    if (this.state === 'ended') return
    const wasLive = this.state !== 'pending' || this._everLive
    this.state = 'ended'
    this.endCode = code
    this.endReason = reason
    this._dropQueued()
    // (no effect when SUBOK already resolved it)
    this._readyReject(error ?? new BusdError(code, reason))
    if (error && !this._handler) this._endError = error
    this._wakeIterators()
    if (this._unsubResolve) { this._unsubResolve(); this._unsubResolve = null }
    const idle = this._idle
    this._idle = []
    for (const resolve of idle) resolve()
    return wasLive
  }
}

// ---------------------------------------------------------------- Bus

export class Bus extends EventEmitter {
  constructor (endpoint, options = {}) {
    super()
    this.endpoint = endpoint
    this.name = options.name ?? 'node'
    if (bytes(this.name).length > 255) throw new RangeError('name is longer than 255 bytes')
    this._curve = options.curve ?? null
    if (this._curve) {
      const { serverKey } = this._curve
      if (typeof serverKey !== 'string' || serverKey.length !== 40) {
        throw new TypeError('curve.serverKey must be the broker\'s public key, 40 characters of Z85')
      }
      if (!this._curve.publicKey || !this._curve.secretKey) {
        this._curve = { ...this._curve, ...curveKeyPair() }
      }
    }
    this._reconnect = options.reconnect !== false
    this._connectTimeoutMs = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS
    this._publishTimeoutMs = options.publishTimeout ?? 0
    this._ctlTimeoutMs = options.ctlTimeout ?? DEFAULT_CTL_TIMEOUT_MS
    this._maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE
    this._wanted = options.features
      ? [...options.features]
      : FEATURES.filter((f) => f !== 'batch' || options.batch !== false)

    this._state = 'hello' // hello | ready | closed
    this._closing = false
    this._recovering = false
    this._conn = null
    this._epoch = 0
    this._heardAt = 0
    this._pingAt = 0
    this._pingNonce = 0n
    this._helloAt = 0
    this._helloRetryMs = HELLO_RETRY_MIN_MS
    this._tick = null

    // WELCOME
    this.brokerId = null
    this.info = {}
    this.features = []
    this.maxPayload = 0
    this.pubWindow = 0
    this.reconnects = 0
    this._maxHeaders = 0
    this._sessionTimeoutMs = DEFAULT_SESSION_TIMEOUT_MS
    this._heartbeatMs = DEFAULT_HEARTBEAT_MS
    this._batch = false
    this._batchMax = 64
    this._batchBytes = 0

    // Publishing
    this._nextSeq = 1
    this._credit = 0
    this._lastTopic = null
    this._lastTopicBuf = null
    this._pending = new Deque() // not yet sent in this session
    this._pendingCount = 0 // live entries in _pending
    this._sent = new Deque() // sent, waiting for PUBACK, in pub_seq order
    this._unsettled = 0
    this._settledWaiters = []
    this.accepted = 0
    this.rejected = 0

    // Subscribing and control
    this._subs = new Map()
    this._nextSubId = 1
    this._ctls = new Map()
    this._nextRequestId = 1

    // Gathered for the next flush
    this._acks = []
    this._creditDue = new Set()
    this._flushScheduled = false
  }

  // 'connecting' (HELLO sent, no WELCOME yet: at start and while
  // recovering a session), 'ready', or 'closed'.
  get state () { return this._state === 'hello' ? 'connecting' : this._state }

  // ---------------------------------------------------------------- connection

  async _start () {
    this._openSocket()
    this._sendHello()
    this._tick = setInterval(() => this._onTick(), TICK_MS)
    try {
      await new Promise((resolve, reject) => {
        this._connectWaiter = { resolve, reject }
        this._connectTimer = setTimeout(() => reject(
          timeoutError(`no WELCOME from ${this.endpoint}`, this._connectTimeoutMs)), this._connectTimeoutMs)
      })
    } catch (err) {
      this._shutdown(err)
      throw err
    } finally {
      clearTimeout(this._connectTimer)
      this._connectWaiter = null
    }
  }

  _openSocket () {
    if (this._conn) this._closeConn(this._conn, 0)
    const opts = {
      linger: LINGER_MS,
      sendHighWaterMark: 0,
      receiveHighWaterMark: 0,
      reconnectInterval: RECONNECT_IVL_MS,
    }
    if (this._curve) {
      opts.curveServerKey = this._curve.serverKey
      opts.curvePublicKey = this._curve.publicKey
      opts.curveSecretKey = this._curve.secretKey
    }
    const sock = new Dealer(opts)
    sock.connect(this.endpoint)
    const conn = { sock, out: new Deque(), writing: false, drained: [] }
    this._conn = conn
    this._readLoop(conn)
  }

  _closeConn (conn, linger) {
    if (conn.closed) return
    conn.closed = true
    try {
      conn.sock.linger = linger
      conn.sock.close()
    } catch { /* already closed */ }
  }

  async _readLoop (conn) {
    try {
      for await (const frames of conn.sock) {
        if (conn !== this._conn) break
        this._heardAt = Date.now()
        let m
        try {
          m = decode(frames)
        } catch (err) {
          this._report(new BusdError(400, `dropped a malformed message from the broker: ${err.message}`))
          continue
        }
        try {
          this._dispatch(m)
        } catch (err) {
          this._report(err)
        }
      }
    } catch (err) {
      if (conn === this._conn && !conn.closed && this._state !== 'closed') this._report(err)
    }
  }

  _send (frames) {
    const conn = this._conn
    if (!conn || conn.closed) return
    conn.out.push(frames)
    if (!conn.writing) this._writeLoop(conn)
  }

  async _writeLoop (conn) {
    conn.writing = true
    try {
      while (conn.out.length && !conn.closed) {
        await conn.sock.send(conn.out.shift())
      }
    } catch (err) {
      if (!conn.closed && conn === this._conn) this._report(err)
    } finally {
      conn.writing = false
      const drained = conn.drained
      conn.drained = []
      for (const resolve of drained) resolve()
    }
  }

  _outDrained () {
    const conn = this._conn
    if (!conn || !conn.writing) return Promise.resolve()
    return new Promise((resolve) => conn.drained.push(resolve))
  }

  _sendHello () {
    const options = this._wanted.length ? { features: this._wanted } : {}
    this._helloAt = Date.now()
    this._send([encodeHello(this.name), Buffer.from(JSON.stringify(options), 'utf8')])
  }

  // The session is gone (ERROR 401 or 503, a silent broker, a PUB the
  // broker could not take in sequence). Keep what the application built
  // and say HELLO again; _onWelcome replays the rest.
  _sessionLost (error, freshSocket) {
    if (!this._reconnect) {
      this._shutdown(error)
      this._report(error)
      return
    }
    this._state = 'hello'
    this._recovering = true
    this._credit = 0
    this._acks = []
    this._creditDue.clear()
    for (const sub of [...this._subs.values()]) {
      if (sub.state === 'ending') {
        // The UNSUB's answer died with the session; so did the subscription.
        this._subs.delete(sub.id)
        if (sub._end(200, 'unsubscribed (session ended)')) this.emit('subend', sub, 200, 'unsubscribed')
        continue
      }
      sub._sentEpoch = -1
      // Deliveries of the old session that no handler has started cannot
      // be acknowledged any more; the broker hands them out again.
      if (sub._explicit) sub._dropQueued()
    }
    if (freshSocket) {
      this._openSocket()
    } else {
      this._conn.out = new Deque() // what was queued belongs to the dead session
    }
    this._sendHello()
  }

  _onTick () {
    const now = Date.now()
    if (this._state === 'hello') {
      if (this._recovering && now - this._helloAt >= this._helloRetryMs) {
        // No WELCOME: maybe the HELLO went to a broker on its way down.
        this._helloRetryMs = Math.min(this._helloRetryMs * 2, HELLO_RETRY_MAX_MS)
        this._openSocket()
        this._sendHello()
      }
      return
    }
    if (this._state !== 'ready') return
    if (this._sessionTimeoutMs > 0 && now - this._heardAt >= this._sessionTimeoutMs) {
      this._sessionLost(new BusdError(408, `no word from the broker for ${this._sessionTimeoutMs} ms`), true)
      return
    }
    if (this._heartbeatMs > 0 && now - this._heardAt >= this._heartbeatMs &&
        now - this._pingAt >= this._heartbeatMs) {
      this._pingAt = now
      this._send([encodePing(++this._pingNonce)])
    }
  }

  // ---------------------------------------------------------------- dispatch

  _dispatch (m) {
    if (this._state === 'closed') return
    switch (m.cmd) {
      case CMD.DELIVER: {
        const sub = this._subs.get(m.subId)
        if (sub && (sub.state === 'live' || sub.state === 'pending')) sub._push(m, this._epoch)
        break
      }
      case CMD.DELIVERB:
        for (const rec of m.records) {
          const sub = this._subs.get(rec.subId)
          if (sub && (sub.state === 'live' || sub.state === 'pending')) sub._push(rec, this._epoch)
        }
        break
      case CMD.PUBACK: return this._onPuback(m)
      case CMD.REJECT: return this._onReject(m)
      case CMD.SUBOK: return this._onSubok(m)
      case CMD.SUBEND: return this._onSubend(m)
      case CMD.GAP: {
        const sub = this._subs.get(m.subId)
        if (sub && sub.state !== 'ended') {
          sub.gaps += m.dropped
          sub.emit('gap', m.dropped)
          this.emit('gap', sub, m.dropped)
        }
        break
      }
      case CMD.WELCOME: return this._onWelcome(m)
      case CMD.ERROR: return this._onError(m)
      case CMD.CTLREPLY: return this._onCtlreply(m)
      case CMD.PING:
        if (this._state === 'ready') this._send([encodePong(m.nonce)])
        break
      default: // PONG: its arrival was the point
    }
  }

  _onWelcome (m) {
    if (this._state !== 'hello') return
    let info = {}
    try {
      info = m.body.length ? parseJson(m.body) : {}
    } catch {
      info = {}
    }
    const brokerChanged = this.brokerId !== null && this.brokerId !== m.brokerId
    this.brokerId = m.brokerId
    this.info = info
    this.pubWindow = m.pubCredit
    this.maxPayload = m.maxPayload
    const num = (v, d) => (typeof v === 'number' && v >= 0 ? v : d)
    this._sessionTimeoutMs = num(info.session_timeout_ms, DEFAULT_SESSION_TIMEOUT_MS)
    this._heartbeatMs = num(info.heartbeat_ms, DEFAULT_HEARTBEAT_MS)
    this._maxHeaders = num(info.max_headers, 0)
    const offered = Array.isArray(info.features) ? info.features : []
    this.features = this._wanted.filter((f) => offered.includes(f))
    this._batch = this.features.includes('batch')
    this._errorContext = this.features.includes('error-context')
    this._batchMax = Math.min(0xffff, Math.max(1, num(info.batch_max, 64)))
    this._batchBytes = num(info.batch_bytes, m.maxPayload + 1024)

    this._state = 'ready'
    this._epoch++
    this._nextSeq = 1
    this._credit = m.pubCredit
    this._heardAt = Date.now()
    this._pingAt = 0
    this._helloRetryMs = HELLO_RETRY_MIN_MS

    // Replay in the order the application made them: subscriptions, CTL
    // requests, then the publishes not yet acknowledged, with their ids.
    for (const sub of this._subs.values()) {
      if (sub.state === 'pending' || sub.state === 'live') {
        if (sub.state === 'live') sub._everLive = true
        sub.state = 'pending'
        this._sendSub(sub)
      }
    }
    for (const ctl of this._ctls.values()) this._send([encodeCtl(ctl.id), ctl.body])
    const resend = new Deque()
    for (const e of this._sent.takeAll()) {
      if (!e.done) { e.seq = 0; resend.push(e) }
    }
    for (const e of this._pending.takeAll()) if (!e.done) resend.push(e)
    this._pending = resend
    this._pendingCount = resend.length
    this._pumpPublish()

    if (this._connectWaiter) {
      this._connectWaiter.resolve()
    } else if (this._recovering) {
      this._recovering = false
      this.reconnects++
      this.emit('reconnect', { brokerId: this.brokerId, brokerChanged, reconnects: this.reconnects })
    }
  }

  _onError (m) {
    let context = null
    if (m.body.length) {
      try { context = parseJson(m.body) } catch { context = null }
    }
    const error = new BusdError(m.code, m.reason, context ?? undefined)
    if (this._state === 'hello' && !this._recovering) {
      // The first HELLO was refused.
      if (this._connectWaiter) this._connectWaiter.reject(error)
      return
    }
    if (m.code === 401) {
      // While our HELLO is outstanding, 401s answer what we sent before it.
      if (this._state === 'ready') this._sessionLost(error, false)
      return
    }
    if (m.code === 503) {
      this._sessionLost(error, true)
      return
    }
    const cmd = context && typeof context.cmd === 'string' ? context.cmd : null
    if (cmd) {
      if ((cmd === 'ACK' || cmd === 'ACKB' || cmd === 'NACK' || cmd === 'CREDIT') && m.code === 404) {
        return // superseded or ended: the broker delivers it again, or it is gone
      }
      if (cmd === 'SUB') {
        const sub = this._subs.get(Number(context.sub_id))
        if (sub && sub.state === 'pending') return this._failSub(sub, error)
      }
      if (cmd === 'UNSUB' && m.code === 404) {
        const sub = this._subs.get(Number(context.sub_id))
        if (sub) { this._subs.delete(sub.id); sub._end(200, 'unsubscribed') }
        return
      }
      if (cmd === 'CTL') {
        const ctl = this._ctls.get(Number(context.request_id))
        if (ctl) return this._settleCtl(ctl, error)
      }
      if ((cmd === 'PUB' || cmd === 'PUBB') && m.code === 400 && this._state === 'ready') {
        // The broker did not take a PUB in sequence: every later pub_seq is
        // off by the same amount. A new session renumbers them all.
        this._report(error)
        this._sessionLost(error, false)
        return
      }
      this._report(error)
      return
    }
    if (m.code === 404) return // most likely an ACK of a superseded delivery
    if (m.code === 409 || m.code === 400) {
      // Without error-context an ERROR names no message; a SUB waiting for
      // its answer is the likely cause (PROTOCOL §3).
      for (const sub of this._subs.values()) {
        if (sub.state === 'pending' && sub._sentEpoch === this._epoch) return this._failSub(sub, error)
      }
    }
    this._report(error)
  }

  _onPuback (m) {
    const n = Number(m.pubSeq)
    const sent = this._sent
    while (sent.length && sent.peek().seq <= n) {
      const e = sent.shift()
      if (!e.done) {
        this.accepted++
        this._settle(e, null)
      }
    }
    if (this._state === 'ready') {
      this._credit += m.credit
      this._pumpPublish()
    }
  }

  _onReject (m) {
    const seq = Number(m.pubSeq)
    const sent = this._sent
    if (!sent.length) return
    const e = sent.at(seq - sent.peek().seq)
    if (!e || e.seq !== seq || e.done) return
    this.rejected++
    this._settle(e, new BusdError(m.code, m.reason, { pubSeq: m.pubSeq, topic: e.topic.toString('latin1') }))
  }

  _onSubok (m) {
    const sub = this._subs.get(m.subId)
    if (!sub) return
    try {
      sub.info = m.body.length ? parseJson(m.body) : {}
    } catch {
      sub.info = {}
    }
    if (typeof sub.info.ack_wait_ms === 'number') sub._ackWaitMs = sub.info.ack_wait_ms
    // A broker may cap the credit it holds (busd: max_credit); the window
    // is what it granted, so top-ups follow what it really holds.
    if (typeof sub.info.credit === 'number' && sub.info.credit < sub._sentCredit) {
      sub._window = Math.max(0, sub._window - (sub._sentCredit - sub.info.credit))
    }
    sub._readyResolve(sub)
    if (sub.state === 'pending') {
      sub.state = 'live'
      sub._everLive = true
      sub._drive()
    }
  }

  _onSubend (m) {
    const sub = this._subs.get(m.subId)
    if (!sub) return
    if (sub.state === 'pending' && !sub._everLive) return this._failSub(sub, new BusdError(m.code, m.reason))
    this._subs.delete(sub.id)
    const error = m.code === 200 || sub.state === 'ending' ? null : new BusdError(m.code, m.reason)
    if (sub._end(m.code, m.reason, error)) this.emit('subend', sub, m.code, m.reason)
  }

  _failSub (sub, error) {
    this._subs.delete(sub.id)
    sub._end(error.code, error.reason, error)
    if (sub._everLive) this.emit('subend', sub, error.code, error.reason)
  }

  _onCtlreply (m) {
    const ctl = this._ctls.get(m.requestId)
    if (!ctl) return // answers a CTL we stopped waiting for
    let reply = {}
    try {
      reply = m.body.length ? parseJson(m.body) : {}
    } catch {
      reply = { text: m.body.toString('utf8') }
    }
    if (m.code === 200) {
      this._settleCtl(ctl, null, reply)
    } else {
      const reason = reply && typeof reply.error === 'string' ? reply.error : JSON.stringify(reply)
      this._settleCtl(ctl, new BusdError(m.code, reason, reply))
    }
  }

  // ---------------------------------------------------------------- publishing

  // Resolves when the broker acknowledges the event (PUBACK), rejects with
  // a BusdError on REJECT, on a local check, or after `timeout` ms (408).
  publish (topic, payload, options = {}) {
    return new Promise((resolve, reject) => {
      if (this._closing || this._state === 'closed') {
        throw new BusdError(503, 'the client is closed')
      }
      // Publishers mostly repeat one topic: keep its bytes, checked once.
      let t = topic === this._lastTopic ? this._lastTopicBuf : null
      if (!t) {
        t = bytes(topic)
        const why = topicError(t)
        if (why) throw new BusdError(400, `topic "${String(topic)}" ${why}`)
        if (typeof topic === 'string') { this._lastTopic = topic; this._lastTopicBuf = t }
      }
      const msgId = bytes(options.id)
      if (msgId.length > 255) throw new BusdError(400, `id is ${msgId.length} bytes (at most 255)`)
      const p = payloadBytes(payload)
      if (this.maxPayload && p.length > this.maxPayload) {
        throw new BusdError(413, `payload is ${p.length} bytes; the broker takes at most ${this.maxPayload}`)
      }
      const h = headersBytes(options.headers, this._maxHeaders)
      if (this._pendingCount >= this._maxQueue) {
        throw new BusdError(429, `${this._pendingCount} events already wait for publisher credit ` +
          `(maxQueue ${this._maxQueue}); await earlier publishes first`)
      }
      const e = { topic: t, msgId, payload: p, headers: h, seq: 0, done: false, resolve, reject, timer: null }
      const timeout = options.timeout ?? this._publishTimeoutMs
      if (timeout > 0) {
        e.timer = setTimeout(() => this._expire(e, timeout), timeout)
      }
      this._pending.push(e)
      this._pendingCount++
      this._unsettled++
      this._scheduleFlush()
    })
  }

  _expire (e, timeout) {
    if (e.done) return
    if (e.seq === 0) this._pendingCount-- // never sent: it leaves the queue now
    this._settle(e, timeoutError('not acknowledged by the broker', timeout))
  }

  _settle (e, error) {
    e.done = true
    if (e.timer) clearTimeout(e.timer)
    e.payload = null
    if (error) e.reject(error); else e.resolve()
    if (--this._unsettled === 0 && this._settledWaiters.length) {
      const waiters = this._settledWaiters
      this._settledWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  // Resolves when every publish made so far is acknowledged or rejected.
  flush () {
    if (this._unsettled === 0) return Promise.resolve()
    return new Promise((resolve) => this._settledWaiters.push(resolve))
  }

  // Send what publisher credit allows: PUBB when the broker enabled
  // batching and more than one event is ready, PUB otherwise.
  _pumpPublish () {
    if (this._state !== 'ready') return
    const pending = this._pending
    let batch = []
    let size = 0
    const flushBatch = () => {
      if (batch.length === 1) this._sendPub(batch[0])
      else if (batch.length > 1) this._send(encodePubb(batch[0].seq, batch))
      batch = []
      size = 0
    }
    while (this._credit > 0 && pending.length) {
      const e = pending.shift()
      if (e.done) continue
      this._pendingCount--
      e.seq = this._nextSeq++
      this._credit--
      this._sent.push(e)
      const rs = this._batch ? pubRecordSize(e.topic, e.msgId, e.headers, e.payload) : 0
      if (!this._batch || rs > this._batchBytes) {
        flushBatch()
        this._sendPub(e)
        continue
      }
      if (batch.length === this._batchMax || size + rs > this._batchBytes) flushBatch()
      batch.push(e)
      size += rs
    }
    flushBatch()
  }

  _sendPub (e) {
    const h = encodePub(e.seq, e.topic, e.msgId)
    if (e.headers) this._send([h, e.payload, e.headers])
    else if (e.payload.length) this._send([h, e.payload])
    else this._send([h])
  }

  // ---------------------------------------------------------------- batching

  _scheduleFlush () {
    if (this._flushScheduled) return
    this._flushScheduled = true
    setImmediate(() => {
      this._flushScheduled = false
      this._flush()
    })
  }

  _flush () {
    if (this._state !== 'ready') return
    this._pumpPublish()
    this._flushAcks()
    for (const sub of this._creditDue) {
      if (sub._consumed > 0 && sub._sentEpoch === this._epoch &&
          (sub.state === 'live' || sub.state === 'pending')) {
        this._send([encodeCredit(sub.id, Math.min(sub._consumed, 0xffffffff))])
        sub._consumed = 0
      }
    }
    this._creditDue.clear()
  }

  _queueAck (subId, deliveryId) {
    this._acks.push({ subId, deliveryId })
    this._scheduleFlush()
  }

  _flushAcks () {
    const acks = this._acks
    if (!acks.length) return
    this._acks = []
    if (!this._batch || acks.length === 1) {
      for (const a of acks) this._send([encodeAck(a.subId, a.deliveryId)])
      return
    }
    for (let i = 0; i < acks.length; i += this._batchMax) {
      const chunk = acks.slice(i, i + this._batchMax)
      if (chunk.length === 1) this._send([encodeAck(chunk[0].subId, chunk[0].deliveryId)])
      else this._send(encodeAckb(chunk))
    }
  }

  _queueCredit (sub) {
    this._creditDue.add(sub)
    this._scheduleFlush()
  }

  // ---------------------------------------------------------------- subscribing

  // With a handler: resolves to the Subscription once the broker confirmed
  // it (SUBOK), rejects with a BusdError when it refused (SUBEND, ERROR).
  // Without: returns the Subscription at once, an async iterator of events.
  subscribe (pattern, handler, options) {
    if (handler !== undefined && handler !== null && typeof handler !== 'function') {
      options = handler
      handler = undefined
    }
    options = options ?? {}
    if (this._closing || this._state === 'closed') {
      const error = new BusdError(503, 'the client is closed')
      if (handler) return Promise.reject(error)
      throw error
    }
    const id = this._nextSubId++
    const sub = new Subscription(this, id, pattern, handler, options)
    const why = patternError(sub._patternBuf)
    if (why) {
      const error = new BusdError(400, `pattern "${String(pattern)}" ${why}`)
      if (handler) return Promise.reject(error)
      sub._end(400, error.reason, error)
      return sub
    }
    this._subs.set(id, sub)
    if (this._state === 'ready') this._sendSub(sub)
    return handler ? sub.ready : sub
  }

  _sendSub (sub) {
    const credit = Math.max(0, Math.min(0xffffffff, sub._window - Math.max(0, sub._local)))
    const options = { ...sub._wire, credit }
    sub._sentCredit = credit
    sub._consumed = 0
    sub._sentEpoch = this._epoch
    this._send([encodeSub(sub.id, sub._patternBuf), Buffer.from(stringifyJson(options), 'utf8')])
  }

  _sendUnsub (sub) {
    if (sub.state === 'ended') return sub._unsubResolve && sub._unsubResolve()
    if (this._state !== 'ready' || sub._sentEpoch !== this._epoch) {
      // No session holds it: nothing to tell the broker.
      this._subs.delete(sub.id)
      if (sub._end(200, 'unsubscribed')) this.emit('subend', sub, 200, 'unsubscribed')
      return
    }
    this._flushAcks()
    sub._unsubSent = true
    this._send([encodeUnsub(sub.id)])
  }

  // ---------------------------------------------------------------- control

  // A CTL request ({"cmd": "stats"} or just "stats"); resolves to the
  // reply object, rejects with a BusdError for any code but 200.
  ctl (request, options = {}) {
    if (typeof request === 'string') request = { cmd: request }
    return new Promise((resolve, reject) => {
      if (this._closing || this._state === 'closed') throw new BusdError(503, 'the client is closed')
      let id = this._nextRequestId
      this._nextRequestId = id >= 0xffffffff ? 1 : id + 1
      while (this._ctls.has(id)) id++
      const ctl = { id, body: Buffer.from(stringifyJson(request), 'utf8'), resolve, reject, timer: null }
      const timeout = options.timeout ?? this._ctlTimeoutMs
      if (timeout > 0) {
        ctl.timer = setTimeout(() => this._settleCtl(ctl, timeoutError('no CTLREPLY', timeout)), timeout)
      }
      this._ctls.set(id, ctl)
      if (this._state === 'ready') this._send([encodeCtl(id), ctl.body])
    })
  }

  _settleCtl (ctl, error, reply) {
    if (!this._ctls.delete(ctl.id)) return
    clearTimeout(ctl.timer)
    if (error) ctl.reject(error); else ctl.resolve(reply)
  }

  // ---------------------------------------------------------------- closing

  // Wait (at most `timeout` ms) for PUBACKs of everything published and
  // for running handlers, then say BYE and close the socket. What is still
  // unsettled then is rejected with BusdError 503.
  close (options = {}) {
    if (this._closePromise) return this._closePromise
    const timeout = options.timeout ?? DEFAULT_CLOSE_TIMEOUT_MS
    this._closing = true
    this._closePromise = (async () => {
      for (const sub of this._subs.values()) sub._dropQueued()
      const idle = [this.flush()]
      for (const sub of this._subs.values()) {
        if (sub._running) idle.push(new Promise((resolve) => sub._idle.push(resolve)))
      }
      let timer
      await Promise.race([
        Promise.all(idle),
        new Promise((resolve) => { timer = setTimeout(resolve, timeout) }),
      ])
      clearTimeout(timer)
      if (this._state === 'ready') {
        this._flushAcks()
        this._send([encodeBye()])
      }
      await Promise.race([
        this._outDrained(),
        new Promise((resolve) => { timer = setTimeout(resolve, Math.min(timeout, LINGER_MS)) }),
      ])
      clearTimeout(timer)
      this._shutdown(new BusdError(503, 'the client closed before this was settled'), LINGER_MS)
    })()
    return this._closePromise
  }

  _shutdown (error, linger = 0) {
    if (this._state === 'closed') return
    this._state = 'closed'
    this._closing = true
    clearInterval(this._tick)
    if (this._conn) this._closeConn(this._conn, linger)
    for (const e of [...this._sent.takeAll(), ...this._pending.takeAll()]) {
      if (!e.done) this._settle(e, error)
    }
    this._pendingCount = 0
    for (const ctl of [...this._ctls.values()]) this._settleCtl(ctl, error)
    for (const sub of [...this._subs.values()]) {
      this._subs.delete(sub.id)
      sub._end(error.code, error.reason, sub.state === 'pending' ? error : null)
    }
  }

  // Report a problem nobody awaits: 'error' listeners, else a warning (an
  // 'error' event without a listener would end the process).
  _report (error) {
    if (this.listenerCount('error')) this.emit('error', error)
    else process.emitWarning(error.message, { type: 'BusdWarning' })
  }
}

export async function connect (endpoint = DEFAULT_ENDPOINT, options = {}) {
  if (endpoint && typeof endpoint === 'object') {
    options = endpoint
    endpoint = options.endpoint ?? DEFAULT_ENDPOINT
  }
  const bus = new Bus(endpoint ?? DEFAULT_ENDPOINT, options)
  await bus._start()
  return bus
}
