// Credit end to end: 100,000 events counted and in order, a small publisher
// window never overrun, and a throttled publisher whose `timeout` turns a
// wait for credit into BusdError 408 instead of an ever-growing queue.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, BusdError } from '../index.js'
import { Broker, waitFor } from './helpers.js'

let broker
before(async () => { broker = await new Broker(['--pub-credit', '10']).start() })
after(async () => { await broker.cleanup() })

test('100,000 events arrive counted and in order', { timeout: 600000 }, async () => {
  const N = 100000
  const pub = await connect(broker.endpoint, { name: 'credit-pub' })
  const subBus = await connect(broker.endpoint, { name: 'credit-sub' })
  try {
    let count = 0
    let outOfOrder = 0
    await subBus.subscribe('bulk.t', async (ev) => {
      if (Number(ev.text()) !== count) outOfOrder++
      count++
    }, { credit: 500 })
    const acks = []
    for (let i = 0; i < N; i++) acks.push(pub.publish('bulk.t', String(i)))
    await Promise.all(acks)
    assert.equal(pub.accepted, N)
    await waitFor(() => count === N, 300000, `${N} events (have ${count})`)
    assert.equal(outOfOrder, 0)
    const stats = await subBus.ctl('stats')
    assert.equal(stats.rejected, 0, 'no publish was sent without credit (REJECT 429)')
    await waitFor(async () => (await subBus.ctl('stats')).inflight === 0, 30000, 'every delivery acknowledged')
  } finally {
    await pub.close()
    await subBus.close()
  }
})

test('a publisher never exceeds the window WELCOME granted', { timeout: 120000 }, async () => {
  const bus = await connect(broker.endpoint, { name: 'credit-window' })
  try {
    assert.equal(bus.pubWindow, 10)
    const results = await Promise.allSettled(Array.from({ length: 2000 }, (_, i) => bus.publish('window.t', String(i))))
    assert.ok(results.every((r) => r.status === 'fulfilled'))
    const clients = await bus.ctl('clients')
    const me = clients.clients.find((c) => c.name === 'credit-window')
    assert.equal(me.rejected, 0)
    assert.equal(me.accepted, 2000)
  } finally {
    await bus.close()
  }
})

test('throttled by a full block queue: publish waits, then times out with 408', { timeout: 120000 }, async () => {
  const pub = await connect(broker.endpoint, { name: 'throttled-pub' })
  const subBus = await connect(broker.endpoint, { name: 'throttled-sub' })
  try {
    const got = []
    const sub = await subBus.subscribe('slow.t', async (ev) => { got.push(ev.text()) },
      { credit: 0, queue_limit: 5, overflow: 'block' })
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => pub.publish('slow.t', String(i), { timeout: 1500 })))
    const ok = results.filter((r) => r.status === 'fulfilled').length
    const timedOut = results.filter((r) => r.status === 'rejected')
    assert.ok(timedOut.length > 0, 'some publishes waited for credit and timed out')
    for (const r of timedOut) {
      assert.ok(r.reason instanceof BusdError)
      assert.equal(r.reason.code, 408)
    }
    // The queue held the first `ok` events; everything accepted is
    // delivered once the subscriber grants credit, nothing that timed out
    // before it was sent.
    sub.addCredit(100)
    await waitFor(() => got.length === ok, 30000, `${ok} events`)
    assert.deepEqual(got, Array.from({ length: ok }, (_, i) => String(i)))
    // The throttle lifted: the publisher has credit again.
    await pub.publish('slow.t', 'after', { timeout: 30000 })
    await waitFor(() => got.length === ok + 1, 30000, 'the event after the throttle')
  } finally {
    await pub.close()
    await subBus.close()
  }
})

test("a broker's credit cap (max_credit) becomes the window", { timeout: 120000 }, async () => {
  const capped = await new Broker(['-s', 'max_credit=50']).start()
  const bus = await connect(capped.endpoint, { name: 'capped' })
  try {
    let n = 0
    const sub = await bus.subscribe('cap.t', async () => { n++ }, { credit: 400 })
    assert.equal(sub.info.credit, 50)
    assert.equal(sub.credit, 50)
    await Promise.all(Array.from({ length: 1000 }, (_, i) => bus.publish('cap.t', String(i))))
    await waitFor(() => n === 1000, 60000, `1000 events (have ${n})`)
  } finally {
    await bus.close()
    await capped.cleanup()
  }
})
