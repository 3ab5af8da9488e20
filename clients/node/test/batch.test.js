// The client's side of PROTOCOL §8 against a stand-in broker written here
// over a zeromq ROUTER, since a busd without the features cannot show it:
// HELLO lists the features, PUBB is used only once WELCOME enables `batch`,
// DELIVERB records become events in order, their ACKs leave as ACKB, and an
// error-context ERROR fails exactly the SUB it names. The same stand-in,
// made a CURVE server, checks that the curve option encrypts the socket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Router } from 'zeromq'
import { connect, BusdError } from '../index.js'
import { CMD } from '../lib/codec.js'
import { waitFor } from './helpers.js'

const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b }
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b }
const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b }
const s8 = (s) => { const v = Buffer.from(s); return Buffer.concat([Buffer.from([v.length]), v]) }
const hdr = (cmd, ...parts) => Buffer.concat([Buffer.from([0xb5, cmd]), ...parts])

// Records of a PUBB body, parsed independently of lib/codec.js.
function parsePubb (body, count) {
  const out = []
  let o = 0
  for (let i = 0; i < count; i++) {
    const t = body.subarray(o + 1, o + 1 + body[o]); o += 1 + body[o]
    const m = body.subarray(o + 1, o + 1 + body[o]); o += 1 + body[o]
    const hl = body.readUInt32BE(o); o += 4
    const h = body.subarray(o, o + hl); o += hl
    const pl = body.readUInt32BE(o); o += 4
    const p = body.subarray(o, o + pl); o += pl
    out.push({ topic: t.toString(), msgId: m.toString(), headers: h.toString(), payload: p.toString() })
  }
  assert.equal(o, body.length, 'PUBB records fill the body exactly')
  return out
}

function deliverRecord (subId, deliveryId, topic, payload, headers = '') {
  const h = Buffer.from(headers)
  const p = Buffer.from(payload)
  return Buffer.concat([u32(subId), u64(deliveryId), u64(0), u64(1700000000000000n), u16(1),
    s8(topic), s8(''), u32(h.length), h, u32(p.length), p])
}

class FakeBroker {
  constructor ({ features, onSub }) {
    this.features = features
    this.onSub = onSub
    this.sock = new Router({ linger: 0 })
    this.hello = null
    this.published = [] // {seq, topic, payload, headers, via}
    this.commands = []
    this.acks = []
    this.credits = 0
    this.expectSeq = 1
  }

  async start () {
    await this.sock.bind('tcp://127.0.0.1:*')
    this.endpoint = this.sock.lastEndpoint
    this.loop()
    return this
  }

  send (rid, ...frames) { return this.sock.send([rid, ...frames]) }

  async loop () {
    try {
      for await (const [rid, h, body] of this.sock) await this.handle(rid, h, body)
    } catch { /* closed */ }
  }

  async handle (rid, h, body) {
    const cmd = h[1]
    this.commands.push(cmd)
    switch (cmd) {
      case CMD.HELLO: {
        this.hello = JSON.parse(body.toString())
        const info = { session_timeout_ms: 15000, heartbeat_ms: 5000, dedup_window_ms: 120000, max_headers: 65536 }
        if (this.features) Object.assign(info, { features: this.features, batch_max: 64, batch_bytes: 1049600 })
        await this.send(rid, hdr(CMD.WELCOME, u16(1), s8('busd-fake'), u32(1000), u32(1048576)),
          Buffer.from(JSON.stringify(info)))
        break
      }
      case CMD.PUB: {
        const seq = Number(h.readBigUInt64BE(2))
        assert.equal(seq, this.expectSeq++)
        const t = h.subarray(11, 11 + h[10]).toString()
        this.published.push({ seq, topic: t, payload: (body || Buffer.alloc(0)).toString(), via: 'PUB' })
        await this.send(rid, hdr(CMD.PUBACK, u64(seq), u32(1)))
        break
      }
      case CMD.PUBB: {
        const first = Number(h.readBigUInt64BE(2))
        const count = h.readUInt16BE(10)
        assert.equal(h.length, 12)
        assert.equal(first, this.expectSeq)
        parsePubb(body, count).forEach((r, i) => this.published.push({ seq: first + i, ...r, via: 'PUBB' }))
        this.expectSeq += count
        await this.send(rid, hdr(CMD.PUBACK, u64(first + count - 1), u32(count)))
        break
      }
      case CMD.SUB: await this.onSub(this, rid, h.readUInt32BE(2), body); break
      case CMD.ACK: this.acks.push({ subId: h.readUInt32BE(2), deliveryId: h.readBigUInt64BE(6), via: 'ACK' }); break
      case CMD.ACKB: {
        const count = h.readUInt16BE(2)
        assert.equal(body.length, 12 * count)
        for (let i = 0; i < count; i++) {
          this.acks.push({ subId: body.readUInt32BE(12 * i), deliveryId: body.readBigUInt64BE(12 * i + 4), via: 'ACKB' })
        }
        break
      }
      case CMD.CREDIT: this.credits += h.readUInt32BE(6); break
      default:
    }
  }

  close () { this.sock.close() }
}

async function deliverB (broker, rid, subId, n) {
  const records = []
  for (let i = 1; i <= n; i++) records.push(deliverRecord(subId, i, 'user.created', `event ${i}`, i === 1 ? '{"k":"v"}' : ''))
  await broker.send(rid, hdr(CMD.DELIVERB, u16(n)), Buffer.concat(records))
}

test('with batch offered: PUBB out, DELIVERB in, ACKB back', async () => {
  const broker = await new FakeBroker({
    features: ['batch', 'error-context'],
    onSub: async (b, rid, subId) => {
      await b.send(rid, hdr(CMD.SUBOK, u32(subId)), Buffer.from('{"stream_seq":0}'))
      await deliverB(b, rid, subId, 10)
    },
  }).start()
  const bus = await connect(broker.endpoint, { name: 'batch-test' })
  try {
    assert.deepEqual(broker.hello, { features: ['batch', 'error-context'] })
    assert.deepEqual(bus.features, ['batch', 'error-context'])

    const acks = []
    for (let i = 0; i < 200; i++) acks.push(bus.publish('user.created', `p${i}`, i === 3 ? { headers: { a: 'b' }, id: 'm3' } : {}))
    await Promise.all(acks)
    assert.equal(broker.published.length, 200)
    broker.published.forEach((p, i) => {
      assert.equal(p.seq, i + 1)
      assert.equal(p.payload, `p${i}`)
    })
    assert.ok(broker.published.some((p) => p.via === 'PUBB'), 'a burst of publishes went out as PUBB')
    assert.equal(broker.published[3].headers, '{"a":"b"}')
    assert.equal(broker.published[3].msgId, 'm3')

    const seen = []
    await bus.subscribe('user.*', async (ev) => { seen.push(ev) })
    await waitFor(() => seen.length === 10 && broker.acks.length === 10, 10000, 'ten events and acks')
    assert.deepEqual(seen.map((e) => e.text()), Array.from({ length: 10 }, (_, i) => `event ${i + 1}`))
    assert.deepEqual(seen[0].headers, { k: 'v' })
    assert.equal(seen[0].ts, 1700000000000000n)
    assert.deepEqual(broker.acks.map((a) => a.deliveryId), Array.from({ length: 10 }, (_, i) => BigInt(i + 1)))
    assert.ok(broker.acks.some((a) => a.via === 'ACKB'), 'acks went out as ACKB')
  } finally {
    await bus.close()
    broker.close()
  }
})

test('without batch offered: plain PUB and ACK only', async () => {
  const broker = await new FakeBroker({
    features: null,
    onSub: async (b, rid, subId) => {
      await b.send(rid, hdr(CMD.SUBOK, u32(subId)), Buffer.from('{"stream_seq":0}'))
      for (let i = 1; i <= 5; i++) {
        await b.send(rid, hdr(CMD.DELIVER, u32(subId), u64(i), u64(0), u64(0), u16(1), s8('t'), s8('')), Buffer.from(`e${i}`))
      }
    },
  }).start()
  const bus = await connect(broker.endpoint)
  try {
    assert.deepEqual(bus.features, [])
    await Promise.all(Array.from({ length: 100 }, (_, i) => bus.publish('t', String(i))))
    assert.equal(broker.published.length, 100)
    assert.ok(broker.published.every((p) => p.via === 'PUB'))
    const seen = []
    await bus.subscribe('t', async (ev) => { seen.push(ev.text()) })
    await waitFor(() => broker.acks.length === 5, 10000, 'five acks')
    assert.deepEqual(seen, ['e1', 'e2', 'e3', 'e4', 'e5'])
    assert.ok(broker.acks.every((a) => a.via === 'ACK'))
    assert.ok(!broker.commands.includes(CMD.PUBB) && !broker.commands.includes(CMD.ACKB))
  } finally {
    await bus.close()
    broker.close()
  }
})

test('batch: false asks for error-context only', async () => {
  const broker = await new FakeBroker({ features: ['batch', 'error-context'], onSub: async () => {} }).start()
  const bus = await connect(broker.endpoint, { batch: false })
  try {
    assert.deepEqual(broker.hello, { features: ['error-context'] })
    assert.deepEqual(bus.features, ['error-context'])
    await Promise.all(Array.from({ length: 50 }, (_, i) => bus.publish('t', String(i))))
    assert.ok(broker.published.every((p) => p.via === 'PUB'))
  } finally {
    await bus.close()
    broker.close()
  }
})

test('error-context: ERROR 409 naming a SUB fails that subscribe only', async () => {
  let first = null
  const broker = await new FakeBroker({
    features: ['batch', 'error-context'],
    onSub: async (b, rid, subId) => {
      if (first === null) {
        first = subId
        // answer the first SUB later, after the ERROR for the second
        return
      }
      await b.send(rid, hdr(CMD.ERROR, u16(409), s8('sub_id in use')),
        Buffer.from(JSON.stringify({ cmd: 'SUB', sub_id: subId })))
      await b.send(rid, hdr(CMD.SUBOK, u32(first)), Buffer.from('{"stream_seq":0}'))
    },
  }).start()
  const bus = await connect(broker.endpoint)
  try {
    const a = bus.subscribe('a', async () => {})
    const b = bus.subscribe('b', async () => {})
    await assert.rejects(b, (err) => err instanceof BusdError && err.code === 409 && err.context.sub_id === 2)
    const sub = await a
    assert.equal(sub.state, 'live')
  } finally {
    await bus.close()
    broker.close()
  }
})

test('curve: the socket is encrypted with the keys given', { timeout: 60000 }, async () => {
  const { curveKeyPair } = await import('zeromq')
  const server = curveKeyPair()
  const broker = new FakeBroker({ features: null, onSub: async () => {} })
  broker.sock = new Router({ linger: 0, curveServer: true, curveSecretKey: server.secretKey })
  await broker.start()
  const bus = await connect(broker.endpoint, { curve: { serverKey: server.publicKey } })
  try {
    await bus.publish('t', 'sealed')
    assert.equal(broker.published[0].payload, 'sealed')
  } finally {
    await bus.close()
  }
  // the wrong server key: the handshake fails, no WELCOME ever comes
  await assert.rejects(connect(broker.endpoint, { curve: { serverKey: curveKeyPair().publicKey }, connectTimeout: 500 }),
    (e) => e instanceof BusdError && e.code === 408)
  await assert.rejects(connect(broker.endpoint, { curve: { serverKey: 'short' } }), TypeError)
  broker.close()
})
