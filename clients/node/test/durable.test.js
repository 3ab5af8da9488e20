// Durable resume: a named cursor picks up after the last acknowledged
// event, across a client leaving and a broker restart. Runs where the
// broker has durable streams; a broker without them answers the durable SUB
// with SUBEND 404, and the test is skipped saying so.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { connect, BusdError } from '../index.js'
import { Broker, waitFor } from './helpers.js'

// A broker with a stream over orders.# when its configuration knows
// streams; otherwise a plain one (busd refuses unknown keys at start-up).
async function startStreamBroker () {
  const probe = new Broker()
  const config = path.join(probe.dir, 'busd.json')
  writeFileSync(config, JSON.stringify({
    data_dir: path.join(probe.dir, 'data'),
    streams: [{ name: 'orders', patterns: ['orders.#'] }],
  }))
  probe.args = ['-c', config]
  try {
    return await probe.start()
  } catch {
    await probe.cleanup()
    return new Broker().start()
  }
}

test('durable subscription resumes after the last acknowledged event', { timeout: 180000 }, async (t) => {
  const broker = await startStreamBroker()
  try {
    let bus = await connect(broker.endpoint, { name: 'durable' })
    try {
      const first = []
      let sub
      try {
        sub = await bus.subscribe('orders.#', async (ev) => { first.push(ev) },
          { durable: 'order-reader', from: 'first', credit: 3 })
      } catch (err) {
        if (err instanceof BusdError && err.code === 404) {
          t.skip(`the broker has no durable streams (SUBEND 404 "${err.reason}"); durable resume not tested`)
          return
        }
        throw err
      }
      for (let i = 1; i <= 5; i++) await bus.publish('orders.created', `order ${i}`, { id: `o-${i}` })
      await waitFor(() => first.length >= 3, 30000, 'three events')
      await sub.unsubscribe()
      assert.deepEqual(first.slice(0, 3).map((e) => e.text()), ['order 1', 'order 2', 'order 3'])
      assert.ok(first[0].streamSeq > 0n, 'events of a stream carry their stream_seq')
      await bus.close()

      await broker.stop()
      await broker.start(broker.port)
      bus = await connect(broker.endpoint, { name: 'durable' })
      for (let i = 6; i <= 7; i++) await bus.publish('orders.created', `order ${i}`, { id: `o-${i}` })
      const second = []
      await bus.subscribe('orders.#', async (ev) => { second.push(ev) }, { durable: 'order-reader' })
      const rest = ['order 4', 'order 5', 'order 6', 'order 7'].slice(first.length - 3)
      await waitFor(() => second.length >= rest.length, 30000, 'the events after the cursor')
      assert.deepEqual(second.map((e) => e.text()), rest)
    } finally {
      await bus.close()
    }
  } finally {
    await broker.cleanup()
  }
})
