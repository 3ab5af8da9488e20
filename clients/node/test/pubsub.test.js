// Publish and subscribe through a real busd: payload kinds, headers,
// wildcards, REJECT, local checks, the async iterator, GAP, unsubscribe,
// CTL and close().
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, BusdError } from '../index.js'
import { Broker, waitFor } from './helpers.js'

let broker
before(async () => { broker = await new Broker().start() })
after(async () => { await broker.cleanup() })

test('payloads: Buffer, string and JSON; headers and msgId arrive unchanged', { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-1' })
  try {
    const got = []
    const sub = await bus.subscribe('kinds.*', async (ev) => { got.push(ev) })
    assert.equal(sub.state, 'live')
    assert.equal(sub.info.stream_seq, 0)
    await bus.publish('kinds.buffer', Buffer.from([0, 1, 2, 255]))
    await bus.publish('kinds.string', 'héllo')
    await bus.publish('kinds.json', { n: 1, list: [1, 2], big: 18446744073709551615n }, {
      id: 'json-1', headers: { 'content-type': 'application/json', trace: 'abc' },
    })
    await bus.publish('kinds.empty')
    await waitFor(() => got.length === 4, 30000, 'four events')
    assert.deepEqual(got[0].payload, Buffer.from([0, 1, 2, 255]))
    assert.equal(got[1].text(), 'héllo')
    assert.deepEqual(got[2].json(), { n: 1, list: [1, 2], big: 18446744073709551615n })
    assert.equal(got[2].msgId, 'json-1')
    assert.deepEqual(got[2].headers, { 'content-type': 'application/json', trace: 'abc' })
    assert.equal(got[3].payload.length, 0)
    assert.deepEqual(got[3].headers, {})
    for (const [i, ev] of got.entries()) {
      assert.equal(typeof ev.deliveryId, 'bigint')
      assert.equal(ev.deliveryId, BigInt(i + 1))
      assert.equal(ev.attempt, 1)
      assert.equal(ev.streamSeq, 0n)
      assert.equal(typeof ev.ts, 'bigint')
      assert.ok(Math.abs(ev.time.getTime() - Date.now()) < 600000)
    }
  } finally {
    await bus.close()
  }
})

test('wildcards: * matches one token, # zero or more', { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-2' })
  try {
    const seen = { star: [], hash: [], all: [], dlq: [] }
    await bus.subscribe('wild.*', async (ev) => { seen.star.push(ev.topic) }, { ack: 'none' })
    await bus.subscribe('wild.#', async (ev) => { seen.hash.push(ev.topic) })
    await bus.subscribe('#', async (ev) => { if (ev.topic.startsWith('wild')) seen.all.push(ev.topic) })
    for (const t of ['wild', 'wild.a', 'wild.a.b', 'wildx.a']) await bus.publish(t, t)
    await waitFor(() => seen.all.length === 4, 30000, 'the # subscriber to see four events')
    await waitFor(() => seen.hash.length === 3, 30000, 'wild.# to see three events')
    assert.deepEqual(seen.star, ['wild.a'])
    assert.deepEqual(seen.hash, ['wild', 'wild.a', 'wild.a.b'])
    assert.deepEqual(seen.all, ['wild', 'wild.a', 'wild.a.b', 'wildx.a'])
  } finally {
    await bus.close()
  }
})

test('REJECT: a $sys.x publish rejects with BusdError 403, later ones go through', { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-3' })
  try {
    const results = await Promise.allSettled([
      bus.publish('ok.one', '1'), bus.publish('$sys.x', 'nope'), bus.publish('ok.two', '2')])
    assert.equal(results[0].status, 'fulfilled')
    assert.equal(results[1].status, 'rejected')
    assert.ok(results[1].reason instanceof BusdError)
    assert.equal(results[1].reason.code, 403)
    assert.match(results[1].reason.reason, /\$|reserved|system/)
    assert.equal(results[2].status, 'fulfilled')
    assert.equal(bus.rejected, 1)
  } finally {
    await bus.close()
  }
})

test('local checks: topic grammar and byte length, header values, payload size', { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-4' })
  try {
    const code = (p) => p.then(() => 0, (e) => { assert.ok(e instanceof BusdError, e); return e.code })
    assert.equal(await code(bus.publish('bad topic', 'x')), 400)
    assert.equal(await code(bus.publish('a.*', 'x')), 400)
    assert.equal(await code(bus.publish('a'.repeat(256), 'x')), 400)
    assert.equal(await code(bus.publish('é'.repeat(128), 'x')), 400) // 256 bytes, 128 characters
    assert.equal(await code(bus.publish('t', 'x', { id: 'i'.repeat(256) })), 400)
    assert.equal(await code(bus.publish('t', 'x', { headers: { n: 1 } })), 400)
    assert.equal(await code(bus.publish('t', Buffer.alloc(bus.maxPayload + 1))), 413)
    assert.equal(await code(bus.publish('a'.repeat(255), 'x')), 0)
    await assert.rejects(bus.subscribe('a.#.b', async () => {}), (e) => e.code === 400)
    await assert.rejects(bus.subscribe('p'.repeat(256), async () => {}), (e) => e.code === 400)
    // an option the broker does not know: SUBEND 400 naming it
    await assert.rejects(bus.subscribe('t', async () => {}, { colour: 'red' }),
      (e) => e instanceof BusdError && e.code === 400 && /colour/.test(e.reason))
  } finally {
    await bus.close()
  }
})

test('async iterator: for await over bus.subscribe(pattern)', { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-5' })
  try {
    const sub = bus.subscribe('chat.#')
    await sub.ready
    for (let i = 0; i < 5; i++) await bus.publish(`chat.room${i}`, `m${i}`)
    const got = []
    for await (const ev of sub) {
      got.push(`${ev.topic}=${ev.text()}`)
      if (got.length === 5) break // ends the subscription (UNSUB)
    }
    assert.deepEqual(got, ['chat.room0=m0', 'chat.room1=m1', 'chat.room2=m2', 'chat.room3=m3', 'chat.room4=m4'])
    assert.equal(sub.state, 'ended')
    const stats = await bus.ctl({ cmd: 'subscriptions' })
    assert.ok(!stats.subscriptions.some((s) => s.pattern === 'chat.#'))
    // a refused pattern makes the iterator throw
    const bad = bus.subscribe('x', { ack: 'sometimes' })
    await assert.rejects(async () => { for await (const ev of bad) assert.fail(`unexpected ${ev}`) },
      (e) => e.code === 400)
  } finally {
    await bus.close()
  }
})

test("GAP: dropped events are reported by 'gap' on the bus", { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-6' })
  try {
    const gaps = []
    bus.on('gap', (sub, dropped) => gaps.push([sub.pattern, dropped]))
    const got = []
    const sub = await bus.subscribe('gap.t', async (ev) => { got.push(ev.text()) },
      { ack: 'none', credit: 0, overflow: 'drop-oldest', queue_limit: 2 })
    for (let i = 1; i <= 5; i++) await bus.publish('gap.t', `e${i}`)
    sub.addCredit(10)
    await waitFor(() => got.length === 2, 30000, 'two events after the GAP')
    assert.deepEqual(got, ['e4', 'e5'])
    assert.deepEqual(gaps, [['gap.t', 3n]])
    assert.equal(sub.gaps, 3n)
  } finally {
    await bus.close()
  }
})

test("unsubscribe: SUBEND 200, 'subend' event, nothing delivered after", { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-7' })
  try {
    const ends = []
    bus.on('subend', (sub, code, reason) => ends.push([sub.pattern, code, reason]))
    let n = 0
    const sub = await bus.subscribe('unsub.t', async () => { n++ })
    await bus.publish('unsub.t', 'a')
    await waitFor(() => n === 1, 30000, 'one event')
    await sub.unsubscribe()
    assert.equal(sub.state, 'ended')
    assert.deepEqual(ends, [['unsub.t', 200, 'unsubscribed']])
    await bus.publish('unsub.t', 'b')
    const stats = await bus.ctl('stats')
    assert.equal(stats.subscriptions, 0)
    assert.equal(n, 1)
  } finally {
    await bus.close()
  }
})

test('ctl: replies as objects, errors as BusdError', { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-8' })
  try {
    const stats = await bus.ctl({ cmd: 'stats' })
    assert.equal(typeof stats.accepted, 'number')
    const clients = await bus.ctl('clients')
    assert.ok(clients.clients.some((c) => c.name === 'pubsub-8'))
    await assert.rejects(bus.ctl({ cmd: 'no-such-command' }), (e) => e instanceof BusdError && e.code === 400)
  } finally {
    await bus.close()
  }
})

test('close: waits for PUBACKs, then rejects new work with 503', { timeout: 60000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'pubsub-9' })
  const acks = Array.from({ length: 2000 }, (_, i) => bus.publish('close.t', String(i)))
  await bus.close()
  const results = await Promise.allSettled(acks)
  assert.ok(results.every((r) => r.status === 'fulfilled'))
  await assert.rejects(bus.publish('close.t', 'late'), (e) => e.code === 503)
  await bus.close() // twice is harmless
})

test('connect: a broker that does not answer fails with 408', { timeout: 60000 }, async () => {
  const { freePort } = await import('./helpers.js')
  const port = await freePort()
  await assert.rejects(connect(`tcp://127.0.0.1:${port}`, { connectTimeout: 300 }),
    (e) => e instanceof BusdError && e.code === 408)
})
