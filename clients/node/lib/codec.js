// codec.js — BUSP/1 frames to bytes and back (doc/protocol.md §3, PROTOCOL §8).
//
// Pure functions over Buffers, no socket and no state, so every layout can
// be checked against the hand-made byte vectors of the protocol documents
// (test/codec.test.js). Decoding is strict: a header that is too short, too
// long, carries a str8 that overruns, or a batch body that does not split
// into exactly `count` records throws a ProtocolError; the client drops such
// a message, as doc/protocol.md §3.3 asks. u64 fields decode as BigInt,
// because delivery ids, stream sequences, GAP counts and PING nonces may
// exceed 2^53; ts_us (i64) as BigInt too.

export const SIG = 0xb5

export const CMD = Object.freeze({
  HELLO: 0x01,
  WELCOME: 0x02,
  PUB: 0x10,
  PUBB: 0x11,
  PUBACK: 0x12,
  REJECT: 0x13,
  SUB: 0x20,
  UNSUB: 0x21,
  CREDIT: 0x22,
  ACK: 0x23,
  NACK: 0x24,
  SUBOK: 0x25,
  DELIVER: 0x26,
  GAP: 0x27,
  DELIVERB: 0x28,
  ACKB: 0x29,
  SUBEND: 0x2f,
  PING: 0x30,
  PONG: 0x31,
  ERROR: 0x3e,
  BYE: 0x3f,
  CTL: 0x40,
  CTLREPLY: 0x41,
})

export const CMD_NAME = Object.freeze(
  Object.fromEntries(Object.entries(CMD).map(([name, code]) => [code, name])))

export class ProtocolError extends Error {
  constructor (message) {
    super(message)
    this.name = 'ProtocolError'
  }
}

const EMPTY = Buffer.alloc(0)

// A str8 field's bytes: strings are UTF-8, Buffers are taken as they are.
export function bytes (value) {
  if (value === undefined || value === null) return EMPTY
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  return Buffer.from(String(value), 'utf8')
}

function str8Len (buf, what) {
  if (buf.length > 255) {
    throw new RangeError(`${what} is ${buf.length} bytes; a str8 field holds at most 255`)
  }
  return buf.length
}

function u64 (value) {
  return typeof value === 'bigint' ? value : BigInt(value)
}

// ---------------------------------------------------------------- client → broker

export function encodeHello (name, version = 1) {
  const n = bytes(name)
  const h = Buffer.allocUnsafe(5 + str8Len(n, 'client name'))
  h[0] = SIG; h[1] = CMD.HELLO
  h.writeUInt16BE(version, 2)
  h[4] = n.length
  n.copy(h, 5)
  return h
}

export function encodePub (pubSeq, topic, msgId) {
  const t = bytes(topic)
  const m = bytes(msgId)
  const h = Buffer.allocUnsafe(12 + str8Len(t, 'topic') + str8Len(m, 'msg_id'))
  h[0] = SIG; h[1] = CMD.PUB
  h.writeBigUInt64BE(u64(pubSeq), 2)
  h[10] = t.length
  t.copy(h, 11)
  h[11 + t.length] = m.length
  m.copy(h, 12 + t.length)
  return h
}

// The size of one PUB record inside a PUBB body (PROTOCOL §8.2).
export function pubRecordSize (topic, msgId, headers, payload) {
  return 1 + topic.length + 1 + msgId.length + 4 + (headers ? headers.length : 0) +
    4 + payload.length
}

// PUBB: [header, body] for records {topic, msgId, headers, payload}
// (Buffers; headers null or empty for none). Record i has pub_seq
// firstPubSeq + i.
export function encodePubb (firstPubSeq, records) {
  if (records.length < 1 || records.length > 0xffff) {
    throw new RangeError(`PUBB count ${records.length} out of range 1..65535`)
  }
  const h = Buffer.allocUnsafe(12)
  h[0] = SIG; h[1] = CMD.PUBB
  h.writeBigUInt64BE(u64(firstPubSeq), 2)
  h.writeUInt16BE(records.length, 10)
  let size = 0
  for (const r of records) {
    const t = bytes(r.topic); const m = bytes(r.msgId)
    str8Len(t, 'topic'); str8Len(m, 'msg_id')
    size += pubRecordSize(t, m, r.headers, bytes(r.payload))
  }
  const body = Buffer.allocUnsafe(size)
  let o = 0
  for (const r of records) {
    const t = bytes(r.topic); const m = bytes(r.msgId); const p = bytes(r.payload)
    const hd = r.headers && r.headers.length ? bytes(r.headers) : EMPTY
    body[o++] = t.length; t.copy(body, o); o += t.length
    body[o++] = m.length; m.copy(body, o); o += m.length
    body.writeUInt32BE(hd.length, o); o += 4
    hd.copy(body, o); o += hd.length
    body.writeUInt32BE(p.length, o); o += 4
    p.copy(body, o); o += p.length
  }
  return [h, body]
}

export function encodeSub (subId, pattern) {
  const p = bytes(pattern)
  const h = Buffer.allocUnsafe(7 + str8Len(p, 'pattern'))
  h[0] = SIG; h[1] = CMD.SUB
  h.writeUInt32BE(subId, 2)
  h[6] = p.length
  p.copy(h, 7)
  return h
}

export function encodeUnsub (subId) {
  const h = Buffer.allocUnsafe(6)
  h[0] = SIG; h[1] = CMD.UNSUB
  h.writeUInt32BE(subId, 2)
  return h
}

export function encodeCredit (subId, credit) {
  const h = Buffer.allocUnsafe(10)
  h[0] = SIG; h[1] = CMD.CREDIT
  h.writeUInt32BE(subId, 2)
  h.writeUInt32BE(credit, 6)
  return h
}

export function encodeAck (subId, deliveryId) {
  const h = Buffer.allocUnsafe(14)
  h[0] = SIG; h[1] = CMD.ACK
  h.writeUInt32BE(subId, 2)
  h.writeBigUInt64BE(u64(deliveryId), 6)
  return h
}

// ACKB: [header, body] for acks {subId, deliveryId}.
export function encodeAckb (acks) {
  if (acks.length < 1 || acks.length > 0xffff) {
    throw new RangeError(`ACKB count ${acks.length} out of range 1..65535`)
  }
  const h = Buffer.allocUnsafe(4)
  h[0] = SIG; h[1] = CMD.ACKB
  h.writeUInt16BE(acks.length, 2)
  const body = Buffer.allocUnsafe(12 * acks.length)
  let o = 0
  for (const a of acks) {
    body.writeUInt32BE(a.subId, o)
    body.writeBigUInt64BE(u64(a.deliveryId), o + 4)
    o += 12
  }
  return [h, body]
}

export const NACK_REDELIVER = 0
export const NACK_DEAD_LETTER = 1

export function encodeNack (subId, deliveryId, action, delayMs = 0) {
  const h = Buffer.allocUnsafe(19)
  h[0] = SIG; h[1] = CMD.NACK
  h.writeUInt32BE(subId, 2)
  h.writeBigUInt64BE(u64(deliveryId), 6)
  h[14] = action
  h.writeUInt32BE(delayMs, 15)
  return h
}

function encodeNonce (command, nonce) {
  const h = Buffer.allocUnsafe(10)
  h[0] = SIG; h[1] = command
  h.writeBigUInt64BE(u64(nonce), 2)
  return h
}

export const encodePing = (nonce) => encodeNonce(CMD.PING, nonce)
export const encodePong = (nonce) => encodeNonce(CMD.PONG, nonce)

export function encodeBye () {
  return Buffer.from([SIG, CMD.BYE])
}

export function encodeCtl (requestId) {
  const h = Buffer.allocUnsafe(6)
  h[0] = SIG; h[1] = CMD.CTL
  h.writeUInt32BE(requestId, 2)
  return h
}

// ---------------------------------------------------------------- broker → client

// A cursor over one frame; every read checks the bounds.
class Reader {
  constructor (buf, what) {
    this.buf = buf
    this.o = 0
    this.what = what
  }

  need (n) {
    if (this.o + n > this.buf.length) {
      throw new ProtocolError(`${this.what}: ends after ${this.buf.length} bytes, ` +
        `${this.o + n} needed`)
    }
  }

  u8 () { this.need(1); return this.buf[this.o++] }
  u16 () { this.need(2); const v = this.buf.readUInt16BE(this.o); this.o += 2; return v }
  u32 () { this.need(4); const v = this.buf.readUInt32BE(this.o); this.o += 4; return v }
  u64 () { this.need(8); const v = this.buf.readBigUInt64BE(this.o); this.o += 8; return v }
  i64 () { this.need(8); const v = this.buf.readBigInt64BE(this.o); this.o += 8; return v }

  raw (n) {
    this.need(n)
    const v = this.buf.subarray(this.o, this.o + n)
    this.o += n
    return v
  }

  str8 () { return this.raw(this.u8()) }

  end () {
    if (this.o !== this.buf.length) {
      throw new ProtocolError(`${this.what}: ${this.buf.length - this.o} bytes after the last field`)
    }
  }
}

// Frames each broker command may have (header included).
const MAX_FRAMES = {
  [CMD.WELCOME]: 2,
  [CMD.PUBACK]: 1,
  [CMD.REJECT]: 1,
  [CMD.SUBOK]: 2,
  [CMD.DELIVER]: 3,
  [CMD.GAP]: 1,
  [CMD.DELIVERB]: 2,
  [CMD.SUBEND]: 1,
  [CMD.ERROR]: 2, // the body is the error-context JSON (PROTOCOL §8.1)
  [CMD.CTLREPLY]: 2,
  [CMD.PING]: 1,
  [CMD.PONG]: 1,
}

// Decode one message from the broker: an object with `cmd` (the code),
// `name` and the command's fields; `body` is frame 2 (empty Buffer when
// missing), `headers` frame 3 or null.
export function decode (frames) {
  if (!frames.length) throw new ProtocolError('empty message')
  const h = frames[0]
  if (h.length < 2) throw new ProtocolError(`header of ${h.length} bytes`)
  if (h[0] !== SIG) throw new ProtocolError(`bad signature 0x${h[0].toString(16)}`)
  const cmd = h[1]
  const max = MAX_FRAMES[cmd]
  const name = CMD_NAME[cmd]
  if (max === undefined) {
    throw new ProtocolError(`command 0x${cmd.toString(16)} (${name || 'unknown'}) is not sent by a broker`)
  }
  if (frames.length > max) throw new ProtocolError(`${name} with ${frames.length} frames (at most ${max})`)
  const r = new Reader(h, name)
  r.o = 2
  const m = { cmd, name, body: frames.length > 1 ? frames[1] : EMPTY, headers: null }
  switch (cmd) {
    case CMD.WELCOME:
      m.version = r.u16()
      m.brokerId = r.str8().toString('utf8')
      m.pubCredit = r.u32()
      m.maxPayload = r.u32()
      break
    case CMD.PUBACK:
      m.pubSeq = r.u64()
      m.credit = r.u32()
      break
    case CMD.REJECT:
      m.pubSeq = r.u64()
      m.code = r.u16()
      m.reason = r.str8().toString('utf8')
      break
    case CMD.SUBOK:
      m.subId = r.u32()
      break
    case CMD.DELIVER:
      m.subId = r.u32()
      m.deliveryId = r.u64()
      m.streamSeq = r.u64()
      m.tsUs = r.i64()
      m.attempt = r.u16()
      m.topic = r.str8().toString('latin1')
      m.msgId = r.str8().toString('utf8')
      m.payload = m.body
      if (frames.length > 2 && frames[2].length) m.headers = frames[2]
      break
    case CMD.GAP:
      m.subId = r.u32()
      m.dropped = r.u64()
      break
    case CMD.DELIVERB:
      m.count = r.u16()
      r.end()
      m.records = decodeDeliverRecords(m.count, m.body)
      break
    case CMD.SUBEND:
      m.subId = r.u32()
      m.code = r.u16()
      m.reason = r.str8().toString('utf8')
      break
    case CMD.ERROR:
      m.code = r.u16()
      m.reason = r.str8().toString('utf8')
      break
    case CMD.CTLREPLY:
      m.requestId = r.u32()
      m.code = r.u16()
      break
    case CMD.PING:
    case CMD.PONG:
      m.nonce = r.u64()
      break
  }
  r.end()
  return m
}

// The records of a DELIVERB body (PROTOCOL §8.2): exactly `count` records
// that fill the body exactly. Each record has the fields of a DELIVER plus
// `headers` (Buffer or null) and `payload` (a view into the body).
export function decodeDeliverRecords (count, body) {
  if (count < 1) throw new ProtocolError('DELIVERB with count 0')
  const r = new Reader(body, 'DELIVERB body')
  const out = new Array(count)
  for (let i = 0; i < count; i++) {
    const subId = r.u32()
    const deliveryId = r.u64()
    const streamSeq = r.u64()
    const tsUs = r.i64()
    const attempt = r.u16()
    const topic = r.str8().toString('latin1')
    const msgId = r.str8().toString('utf8')
    const hlen = r.u32()
    const headers = hlen ? r.raw(hlen) : null
    const payload = r.raw(r.u32())
    out[i] = { subId, deliveryId, streamSeq, tsUs, attempt, topic, msgId, headers, payload }
  }
  r.end()
  return out
}

// ---------------------------------------------------------------- JSON with u64

// JSON.parse, except that integers beyond Number.MAX_SAFE_INTEGER become
// BigInt instead of losing digits (doc/protocol.md §1.4: broker integers
// may be as large as 2^64-1). Strings are skipped by the scanner, so digits
// inside them are never touched.
const MARK = `~busd-u64-${Math.random().toString(36).slice(2)}~`
const TOKENS = /"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.\deE])/g

export function parseJson (text) {
  if (Buffer.isBuffer(text)) text = text.toString('utf8')
  let big = false
  const marked = text.replace(TOKENS, (tok) => {
    if (tok[0] === '"') return tok
    const n = BigInt(tok)
    if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)) return tok
    big = true
    return `"${MARK}${tok}"`
  })
  if (!big) return JSON.parse(text)
  return JSON.parse(marked, (key, value) =>
    typeof value === 'string' && value.startsWith(MARK) ? BigInt(value.slice(MARK.length)) : value)
}

// JSON.stringify that writes BigInt values as plain integers.
export function stringifyJson (value) {
  if (!containsBigInt(value)) return JSON.stringify(value)
  const marks = []
  const text = JSON.stringify(value, (key, v) => {
    if (typeof v !== 'bigint') return v
    marks.push(v.toString())
    return `${MARK}${marks.length - 1}`
  })
  return text.replace(new RegExp(`"${MARK.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}(\\d+)"`, 'g'),
    (_, i) => marks[Number(i)])
}

function containsBigInt (v) {
  if (typeof v === 'bigint') return true
  if (v && typeof v === 'object') {
    for (const k in v) if (containsBigInt(v[k])) return true
  }
  return false
}
