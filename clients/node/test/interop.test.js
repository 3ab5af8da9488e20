// Interop with the C tools both ways: busd-pub → this client, and this
// client → busd-sub. Payload bytes, msg_id and headers cross unchanged.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { connect } from '../index.js'
import { Broker, BUSD_TOOLS, runTool, spawnTool, waitFor } from './helpers.js'

const haveTools = existsSync(path.join(BUSD_TOOLS, 'busd-pub')) && existsSync(path.join(BUSD_TOOLS, 'busd-sub'))
const skip = haveTools ? false : `busd-pub/busd-sub not built in ${BUSD_TOOLS}`

let broker
before(async () => { broker = await new Broker().start() })
after(async () => { await broker.cleanup() })

test('busd-pub publishes, this client receives', { timeout: 120000, skip }, async () => {
  const bus = await connect(broker.endpoint, { name: 'interop-sub' })
  try {
    const got = []
    await bus.subscribe('interop.in.#', async (ev) => { got.push(ev) })
    let r = await runTool('busd-pub', ['-e', broker.endpoint, '-t', 'interop.in.one', '-m', '{"name":"Zoë"}',
      '--id', 'c-1', '-H', 'source=cli', '-H', 'trace=t1', '--confirm'])
    assert.equal(r.code, 0, r.stderr)
    r = await runTool('busd-pub', ['-e', broker.endpoint, '-t', 'interop.in.many', '-l', '--confirm'],
      { input: Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n' })
    assert.equal(r.code, 0, r.stderr)
    await waitFor(() => got.length === 101, 30000, '101 events from busd-pub')
    assert.equal(got[0].topic, 'interop.in.one')
    assert.deepEqual(got[0].json(), { name: 'Zoë' })
    assert.equal(got[0].msgId, 'c-1')
    assert.deepEqual(got[0].headers, { source: 'cli', trace: 't1' })
    assert.deepEqual(got.slice(1).map((e) => e.text()), Array.from({ length: 100 }, (_, i) => `line ${i}`))
  } finally {
    await bus.close()
  }
})

test('this client publishes, busd-sub receives', { timeout: 120000, skip }, async () => {
  const bus = await connect(broker.endpoint, { name: 'interop-pub' })
  const proc = spawnTool('busd-sub', ['-e', broker.endpoint, '-C', '3', '--json', 'interop.out.*'])
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (d) => { stdout += d })
  proc.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)))
  try {
    await waitFor(async () => (await bus.ctl('subscriptions')).subscriptions.some((s) => s.pattern === 'interop.out.*'),
      30000, 'busd-sub to subscribe')
    await bus.publish('interop.out.a', 'plain text')
    await bus.publish('interop.out.b', { n: 2 }, { id: 'n-2', headers: { k: 'v' } })
    await bus.publish('interop.out.c', Buffer.from([0xff, 0x00, 0x41]))
    assert.equal(await exited, 0, stderr)
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l))
    assert.equal(lines.length, 3)
    assert.equal(lines[0].topic, 'interop.out.a')
    assert.equal(lines[0].payload, 'plain text')
    assert.equal(lines[1].payload, '{"n":2}')
    assert.equal(lines[1].msg_id, 'n-2')
    assert.deepEqual(lines[1].headers, { k: 'v' })
    assert.equal(Buffer.from(lines[2].payload_base64, 'base64').toString('hex'), 'ff0041')
  } finally {
    if (proc.exitCode === null) proc.kill('SIGTERM')
    await bus.close()
  }
})
