// Recovery like libbusd: after a broker restart (ERROR 503, then a new
// broker on the same port) the client says HELLO again, re-subscribes with
// the same sub_ids, re-sends unacknowledged publishes with their ids, and
// never lets an ACK of the old session acknowledge a delivery of the new
// one. A broker that falls silent (SIGSTOP) is left for a fresh socket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from '../index.js'
import { Broker, waitFor } from './helpers.js'

test('broker restart: reconnect, re-subscribe, re-send what was not acknowledged', { timeout: 120000 }, async () => {
  const broker = await new Broker().start()
  const bus = await connect(broker.endpoint, { name: 'restart' })
  try {
    const reconnects = []
    bus.on('reconnect', (info) => reconnects.push(info))
    const got = []
    const sub = await bus.subscribe('rs.#', async (ev) => { got.push(ev.text()) })
    const firstBroker = bus.brokerId
    await bus.publish('rs.a', 'before')
    await waitFor(() => got.length === 1, 30000, 'the first event')

    await broker.stop() // SIGTERM: busd sends ERROR 503 and exits
    // Published while no broker runs: kept, and sent to the next one.
    const whileDown = [bus.publish('rs.b', 'while down 1', { id: 'down-1' }),
      bus.publish('rs.b', 'while down 2', { id: 'down-2' })]
    await broker.start(broker.port)
    await waitFor(() => reconnects.length >= 1, 60000, "the 'reconnect' event")
    await Promise.all(whileDown)
    assert.notEqual(bus.brokerId, firstBroker)
    assert.equal(reconnects[0].brokerChanged, true)
    assert.equal(reconnects[0].brokerId, bus.brokerId)
    assert.equal(bus.reconnects, reconnects.length)

    await bus.publish('rs.c', 'after')
    await waitFor(() => got.length === 4, 30000, 'the events after the restart')
    assert.deepEqual(got, ['before', 'while down 1', 'while down 2', 'after'])
    const subs = (await bus.ctl('subscriptions')).subscriptions
    assert.equal(subs.length, 1)
    assert.equal(subs[0].sub_id, sub.id, 're-subscribed with the same sub_id')
    assert.equal(subs[0].pattern, 'rs.#')
    assert.equal(sub.state, 'live')
  } finally {
    await bus.close()
    await broker.cleanup()
  }
})

test('broker killed (no 503): the next PING gets ERROR 401 and a new session', { timeout: 120000 }, async () => {
  const broker = await new Broker(['--heartbeat', '300']).start()
  const bus = await connect(broker.endpoint, { name: 'killed' })
  try {
    const got = []
    await bus.subscribe('kl.t', async (ev) => { got.push(ev.text()) }, { ack: 'none' })
    await broker.stop('SIGKILL')
    const reconnected = once(bus, 'reconnect')
    await broker.start(broker.port)
    await reconnected
    await bus.publish('kl.t', 'after')
    await waitFor(() => got.length === 1, 30000, 'the event after the restart')
    assert.deepEqual(got, ['after'])
  } finally {
    await bus.close()
    await broker.cleanup()
  }
})

test('an ACK from before a reconnect never acknowledges a new delivery', { timeout: 120000 }, async () => {
  const broker = await new Broker().start()
  const bus = await connect(broker.endpoint, { name: 'stale-ack' })
  try {
    const gates = new Map()
    const started = []
    const gate = (name) => new Promise((resolve) => gates.set(name, resolve))
    await bus.subscribe('st.t', async (ev) => {
      started.push([ev.text(), ev.deliveryId])
      await gate(ev.text())
    }, { concurrency: 2 })
    await bus.publish('st.t', 'old')
    await waitFor(() => started.length === 1, 30000, 'the old delivery')

    await broker.stop()
    const reconnected = once(bus, 'reconnect')
    await broker.start(broker.port)
    await reconnected
    await bus.publish('st.t', 'new')
    await waitFor(() => started.length === 2, 30000, 'the new delivery')
    // delivery_ids restart at 1: the old event's ACK would name the new one.
    assert.equal(started[0][1], 1n)
    assert.equal(started[1][1], 1n)

    gates.get('old')() // the old handler finishes first
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setImmediate(resolve))
    const inflight = async () => (await bus.ctl('subscriptions')).subscriptions[0].inflight
    assert.equal(await inflight(), 1, 'the new delivery is still unacknowledged')
    const stats = await bus.ctl('stats')
    assert.equal(stats.protocol_errors, 0)

    gates.get('new')()
    await waitFor(async () => (await inflight()) === 0, 30000, 'the new delivery acknowledged')
  } finally {
    await bus.close()
    await broker.cleanup()
  }
})

test('a silent broker: fresh socket, HELLO again, session restored', { timeout: 120000 }, async () => {
  const broker = await new Broker(['--heartbeat', '200', '--session-timeout', '1500']).start()
  const bus = await connect(broker.endpoint, { name: 'silence' })
  try {
    const got = []
    await bus.subscribe('si.t', async (ev) => { got.push(ev.text()) })
    const reconnected = once(bus, 'reconnect')
    process.kill(broker.pid, 'SIGSTOP')
    // Longer than session_timeout_ms: the client gives up on the session
    // by itself (the stopped broker can tell it nothing).
    await waitFor(() => bus.state === 'connecting', 30000, 'the client to notice the silence')
    assert.equal(bus.state, 'connecting')
    const pending = bus.publish('si.t', 'after the silence', { id: 'si-1' })
    process.kill(broker.pid, 'SIGCONT')
    const [info] = await reconnected
    assert.equal(info.brokerChanged, false)
    await pending
    await waitFor(() => got.includes('after the silence'), 30000, 'the event after the silence')
  } finally {
    try { process.kill(broker.pid, 'SIGCONT') } catch {}
    await bus.close()
    await broker.cleanup()
  }
})
