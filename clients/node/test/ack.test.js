// At-least-once through handlers: resolve ACKs, throw NACKs (redelivered
// with attempt 2), DeadLetter dead-letters at once, max_deliver ends in a
// dead letter; queue groups, concurrency, and a slow handler that keeps its
// session because heartbeats are answered beside it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, DeadLetter } from '../index.js'
import { Broker, waitFor, sleep } from './helpers.js'

let broker
before(async () => {
  broker = await new Broker(['-s', 'backoff_initial_ms=50', '-s', 'backoff_max_ms=200',
    '--heartbeat', '300', '--session-timeout', '3000']).start()
})
after(async () => { await broker.cleanup() })

async function withBus (name, fn) {
  const bus = await connect(broker.endpoint, { name })
  try { return await fn(bus) } finally { await bus.close() }
}

test('explicit ack: a handler that resolves acknowledges its delivery', { timeout: 60000 }, async () => {
  await withBus('ack-1', async (bus) => {
    const seen = []
    const sub = await bus.subscribe('ack.ok', async (ev) => { seen.push([ev.text(), ev.attempt]) })
    assert.equal(sub.info.ack, 'explicit', 'a handler subscribes with ack: explicit by default')
    for (let i = 0; i < 20; i++) await bus.publish('ack.ok', String(i))
    await waitFor(() => seen.length === 20, 30000, 'twenty events')
    await waitFor(async () => {
      const s = (await bus.ctl('subscriptions')).subscriptions.find((x) => x.pattern === 'ack.ok')
      return s.inflight === 0 && s.delivered === 20
    }, 30000, 'no delivery left in flight')
    assert.ok(seen.every(([, attempt]) => attempt === 1))
  })
})

test('NACK: a handler that throws gets the event again with attempt 2', { timeout: 60000 }, async () => {
  await withBus('ack-2', async (bus) => {
    const attempts = []
    await bus.subscribe('ack.retry', async (ev) => {
      attempts.push([ev.text(), ev.attempt, ev.deliveryId])
      if (ev.attempt === 1) throw new Error('temporary failure')
    })
    await bus.publish('ack.retry', 'once more')
    await waitFor(() => attempts.length === 2, 30000, 'the redelivery')
    assert.deepEqual(attempts.map(([t, a]) => [t, a]), [['once more', 1], ['once more', 2]])
    assert.notEqual(attempts[0][2], attempts[1][2], 'a redelivery has a new delivery_id')
    await sleep(300)
    assert.equal(attempts.length, 2, 'acknowledged on attempt 2: no third delivery')
  })
})

test('max_deliver: a handler that always throws ends in a dead letter', { timeout: 60000 }, async () => {
  await withBus('ack-3', async (bus) => {
    const dead = []
    await bus.subscribe('$dlq.ack.#', async (ev) => { dead.push(ev) }, { ack: 'none' })
    let tries = 0
    await bus.subscribe('ack.poison', async () => { tries++; throw new Error('always fails') },
      { max_deliver: 3, group: 'poison-workers' })
    await bus.publish('ack.poison', 'bad', { id: 'poison-1', headers: { origin: 'test' } })
    await waitFor(() => dead.length === 1, 30000, 'the dead letter')
    assert.equal(tries, 3)
    const d = dead[0]
    assert.equal(d.topic, '$dlq.ack.poison')
    assert.equal(d.text(), 'bad')
    assert.equal(d.msgId, 'poison-1')
    assert.equal(d.headers.origin, 'test')
    assert.equal(d.headers['x-reason'], 'max_deliver 3 reached')
    assert.equal(d.headers['x-attempts'], '3')
    assert.equal(d.headers['x-subscription'], 'poison-workers')
    const list = await bus.ctl({ cmd: 'dlq-list', topic: 'ack.#' })
    assert.ok(list.dead_letters.some((x) => x.msg_id === 'poison-1'))
  })
})

test('DeadLetter: thrown by a handler, dead-letters at once with its reason', { timeout: 60000 }, async () => {
  await withBus('ack-4', async (bus) => {
    const dead = []
    await bus.subscribe('$dlq.ack.#', async (ev) => { dead.push(ev) }, { ack: 'none' })
    let tries = 0
    await bus.subscribe('ack.invalid', async (ev) => {
      tries++
      if (!ev.json().email) throw new DeadLetter('no email address')
    })
    await bus.publish('ack.invalid', { name: 'nobody' })
    await waitFor(() => dead.length === 1, 30000, 'the dead letter')
    assert.equal(tries, 1)
    assert.equal(dead[0].headers['x-reason'], 'no email address')
    assert.equal(dead[0].headers['x-attempts'], '1')
  })
})

test('groups: each event goes to one member', { timeout: 60000 }, async () => {
  const a = await connect(broker.endpoint, { name: 'member-a' })
  const b = await connect(broker.endpoint, { name: 'member-b' })
  try {
    const seen = { a: [], b: [] }
    await a.subscribe('ack.work', async (ev) => { seen.a.push(ev.text()) }, { group: 'workers' })
    await b.subscribe('ack.work', async (ev) => { seen.b.push(ev.text()) }, { group: 'workers' })
    for (let i = 0; i < 40; i++) await a.publish('ack.work', String(i))
    await waitFor(() => seen.a.length + seen.b.length === 40, 30000, 'forty events')
    assert.ok(seen.a.length > 0 && seen.b.length > 0, 'both members got work')
    const all = [...seen.a, ...seen.b].map(Number).sort((x, y) => x - y)
    assert.deepEqual(all, Array.from({ length: 40 }, (_, i) => i))
  } finally {
    await a.close()
    await b.close()
  }
})

test('concurrency: handlers run one at a time unless asked for more', { timeout: 60000 }, async () => {
  await withBus('ack-6', async (bus) => {
    let running = 0
    const peaks = { one: 0, three: 0 }
    const handler = (key) => async () => {
      running++
      peaks[key] = Math.max(peaks[key], running)
      await sleep(20)
      running--
    }
    let done = 0
    const one = await bus.subscribe('ack.c1', async (ev) => { await handler('one')(ev); done++ })
    for (let i = 0; i < 10; i++) await bus.publish('ack.c1', String(i))
    await waitFor(() => done === 10, 30000, 'ten serial events')
    await one.unsubscribe()
    await bus.subscribe('ack.c3', async (ev) => { await handler('three')(ev); done++ }, { concurrency: 3 })
    for (let i = 0; i < 12; i++) await bus.publish('ack.c3', String(i))
    await waitFor(() => done === 22, 30000, 'twelve concurrent events')
    assert.equal(peaks.one, 1)
    assert.equal(peaks.three, 3)
  })
})

test('a slow handler does not cost the session: heartbeats go on beside it', { timeout: 60000 }, async () => {
  await withBus('ack-7', async (bus) => {
    let reconnects = 0
    bus.on('reconnect', () => reconnects++)
    let finished = false
    await bus.subscribe('ack.slow', async () => { await sleep(4500); finished = true })
    await bus.publish('ack.slow', 'take your time')
    // 4.5 s is longer than the broker's session timeout (3 s); PINGs are
    // answered while the handler waits.
    await waitFor(() => finished, 30000, 'the slow handler')
    await waitFor(async () => {
      const s = (await bus.ctl('subscriptions')).subscriptions.find((x) => x.pattern === 'ack.slow')
      return s && s.inflight === 0
    }, 30000, 'the slow handler\'s ACK')
    assert.equal(reconnects, 0)
    const stats = await bus.ctl('stats')
    assert.equal(stats.sessions_expired, 0)
  })
})
