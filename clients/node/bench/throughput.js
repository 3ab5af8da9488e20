// throughput.js — 1→1 throughput of the Node.js client through busd, with
// and without PROTOCOL §8 batching, next to the C client (busd-bench) and
// to plain zeromq.js DEALER→ROUTER, the ceiling of the binding.
//
//   node bench/throughput.js [--count N] [--size BYTES] [--rounds R]
//                            [--busd PATH] [--tools DIR] [--json]
//
// Every run gets a fresh busd on a free loopback port (stopped by PID) and
// its own processes: publisher and subscriber are separate Node.js
// processes, as the C client's are separate threads, so neither waits for
// the other's event loop. The delivered rate is N divided by the time from
// the publisher's first publish to the subscriber's last event; every event
// carries its sequence number, so loss and reordering are counted. The
// table shows the median over the rounds.

import { fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Dealer, Router } from 'zeromq'
import { connect } from '../index.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const now = () => performance.timeOrigin + performance.now()

function arg (name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : dflt
}
const flag = (name) => process.argv.includes(`--${name}`)

// ---------------------------------------------------------------- roles (child processes)

async function roleSub ({ endpoint, count, batch, ack, credit }) {
  const bus = await connect(endpoint, { name: 'bench-sub', batch })
  let n = 0
  let disorder = 0
  let first = 0
  let done
  const finished = new Promise((resolve) => { done = resolve })
  await bus.subscribe('bench.t', async (ev) => {
    if (n === 0) first = now()
    if (ev.payload.readUInt32BE(0) !== n) disorder++
    if (++n === count) done(now())
  }, { ack, credit })
  process.send({ ready: true, features: bus.features })
  const last = await finished
  process.send({ first, last, received: n, disorder })
  await bus.close()
}

async function rolePub ({ endpoint, count, size, batch }) {
  const bus = await connect(endpoint, { name: 'bench-pub', batch })
  process.send({ ready: true, features: bus.features })
  await once(process, 'message')
  const payload = Buffer.alloc(size, 0x61)
  const CHUNK = 10000
  const start = now()
  let prev = []
  for (let c = 0; c < count; c += CHUNK) {
    const cur = []
    for (let i = c; i < Math.min(count, c + CHUNK); i++) {
      const p = Buffer.from(payload)
      p.writeUInt32BE(i, 0)
      cur.push(bus.publish('bench.t', p))
    }
    await Promise.all(prev)
    prev = cur
  }
  await Promise.all(prev)
  const end = now()
  process.send({ start, end })
  await bus.close()
}

async function roleRouter ({ endpoint, count }) {
  const sock = new Router({ receiveHighWaterMark: 0 })
  await sock.bind(endpoint)
  process.send({ ready: true })
  let n = 0
  let disorder = 0
  let first = 0
  for await (const [, msg] of sock) {
    if (n === 0) first = now()
    if (msg.readUInt32BE(0) !== n) disorder++
    if (++n === count) break
  }
  process.send({ first, last: now(), received: n, disorder })
  sock.close()
}

async function roleDealer ({ endpoint, count, size }) {
  const sock = new Dealer({ sendHighWaterMark: 0, linger: 5000 })
  sock.connect(endpoint)
  process.send({ ready: true })
  await once(process, 'message')
  const payload = Buffer.alloc(size, 0x61)
  const start = now()
  for (let i = 0; i < count; i++) {
    const p = Buffer.from(payload)
    p.writeUInt32BE(i, 0)
    await sock.send(p)
  }
  process.send({ start, end: now() })
  sock.close()
}

// ---------------------------------------------------------------- driver

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)) })
  })
}

async function startBusd (bin) {
  const port = await freePort()
  const endpoint = `tcp://127.0.0.1:${port}`
  const proc = spawn(bin, ['--bind', endpoint, '--log-level', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] })
  for (let i = 0; i < 300; i++) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (up) return { proc, endpoint }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  proc.kill('SIGKILL')
  throw new Error(`busd did not listen on ${endpoint}`)
}

async function stopBusd ({ proc }) {
  const exited = once(proc, 'exit')
  process.kill(proc.pid, 'SIGTERM')
  await exited
}

function child (role, opts) {
  const c = fork(fileURLToPath(import.meta.url), ['--role', role, '--opts', JSON.stringify(opts)],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // BENCH_CPU_PROF=DIR: a V8 CPU profile of every child, for finding
      // where the time goes (open the .cpuprofile in Chrome DevTools).
      execArgv: process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [],
    })
  const exited = once(c, 'exit') // before anything can make it exit
  const messages = []
  const waiters = []
  c.on('message', (m) => { if (waiters.length) waiters.shift()(m); else messages.push(m) })
  return {
    proc: c,
    exited,
    next: () => messages.length ? Promise.resolve(messages.shift()) : new Promise((resolve) => waiters.push(resolve)),
  }
}

async function runPair (subRole, pubRole, opts) {
  const sub = child(subRole, opts)
  const ready = await sub.next()
  const pub = child(pubRole, opts)
  const pubReady = await pub.next()
  pub.proc.send('go')
  const p = await pub.next()
  const s = await sub.next()
  await Promise.all([sub.exited, pub.exited])
  return {
    rate: s.received / ((s.last - p.start) / 1000),
    publishRate: opts.count / ((p.end - p.start) / 1000),
    received: s.received,
    disorder: s.disorder,
    features: pubReady.features ?? ready.features ?? [],
  }
}

async function runBusdNode (bin, opts) {
  const busd = await startBusd(bin)
  try {
    return await runPair('sub', 'pub', { ...opts, endpoint: busd.endpoint })
  } finally {
    await stopBusd(busd)
  }
}

async function runZmq (opts) {
  const port = await freePort()
  return runPair('router', 'dealer', { ...opts, endpoint: `tcp://127.0.0.1:${port}` })
}

async function runBusdC (bin, tools, { count, size, batch }) {
  const bench = path.join(tools, 'busd-bench')
  if (!existsSync(bench)) return null
  const help = await new Promise((resolve) => {
    let out = ''
    const p = spawn(bench, ['--help'])
    p.stdout.on('data', (d) => { out += d })
    p.on('exit', () => resolve(out))
  })
  if (!batch && !help.includes('--no-batch')) return null
  const busd = await startBusd(bin)
  try {
    const args = ['-e', busd.endpoint, '--pub', '1', '--sub', '1', '--count', String(count), '--size', String(size), '--json']
    if (!batch) args.push('--no-batch')
    const out = await new Promise((resolve, reject) => {
      let text = ''
      const p = spawn(bench, args, { stdio: ['ignore', 'pipe', 'inherit'] })
      p.stdout.on('data', (d) => { text += d })
      p.on('exit', (code) => code === 0 ? resolve(text) : reject(new Error(`busd-bench exited ${code}`)))
    })
    const r = JSON.parse(out)
    return { rate: r.sub.msgs_per_s, received: r.sub.msgs, disorder: r.out_of_order, features: batch ? ['batch'] : [] }
  } finally {
    await stopBusd(busd)
  }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

async function main () {
  const role = arg('role')
  if (role) {
    const opts = JSON.parse(arg('opts'))
    const roles = { sub: roleSub, pub: rolePub, router: roleRouter, dealer: roleDealer }
    await roles[role](opts)
    process.exit(0)
  }
  const count = Number(arg('count', 200000))
  const size = Number(arg('size', 100))
  const rounds = Number(arg('rounds', 3))
  const clientDir = path.resolve(here, '..')
  const bin = arg('busd', process.env.BUSD_BIN || path.resolve(clientDir, '../../src/broker/busd'))
  const tools = arg('tools', process.env.BUSD_TOOLS || path.resolve(clientDir, '../../src/tools'))

  const shapes = [
    ['zeromq.js DEALER→ROUTER (ceiling)', () => runZmq({ count, size })],
    ['Node client, batch, ack none', () => runBusdNode(bin, { count, size, batch: true, ack: 'none', credit: 1000 })],
    ['Node client, no batch, ack none', () => runBusdNode(bin, { count, size, batch: false, ack: 'none', credit: 1000 })],
    ['Node client, batch, explicit ack', () => runBusdNode(bin, { count, size, batch: true, ack: 'explicit', credit: 1000 })],
    ['Node client, no batch, explicit ack', () => runBusdNode(bin, { count, size, batch: false, ack: 'explicit', credit: 1000 })],
    ['C client (busd-bench), batch', () => runBusdC(bin, tools, { count, size, batch: true })],
    ['C client (busd-bench), no batch', () => runBusdC(bin, tools, { count, size, batch: false })],
  ]
  const results = []
  for (const [name, fn] of shapes) {
    const runs = []
    for (let r = 0; r < rounds; r++) {
      const res = await fn()
      if (!res) break
      runs.push(res)
    }
    if (!runs.length) continue
    const rates = runs.map((x) => (typeof x.rate === 'number' ? x.rate : NaN))
    const row = {
      shape: name,
      delivered_per_s: Math.round(median(rates)),
      rounds: rates.map(Math.round),
      lost: runs.map((x) => (x.received === undefined ? 0 : count - x.received)).reduce((a, b) => a + b, 0),
      reordered: runs.map((x) => x.disorder ?? 0).reduce((a, b) => a + b, 0),
      features: runs[0].features,
    }
    results.push(row)
    if (!flag('json')) {
      console.error(`${name}: ${row.delivered_per_s} msgs/s (rounds ${row.rounds.join(', ')})` +
        (row.features ? ` features [${row.features.join(', ')}]` : ''))
    }
  }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  if (flag('json')) {
    console.log(JSON.stringify({ count, size, rounds, node: process.version, loadavg: load, results }, null, 1))
  } else {
    console.log(`\n${count} events × ${size} B, 1 publisher → 1 subscriber, median of ${rounds}; ` +
      `node ${process.version}; load average ${load}\n`)
    console.log('| shape | delivered (msgs/s) | rounds | lost | reordered |')
    console.log('|---|--:|---|--:|--:|')
    for (const r of results) {
      console.log(`| ${r.shape} | ${r.delivered_per_s.toLocaleString('en-US')} | ${r.rounds.join(', ')} | ${r.lost} | ${r.reordered} |`)
    }
  }
}

main().catch((err) => { console.error(err); process.exit(1) })
