// helpers.js — a real busd for the tests: started on a free loopback port,
// stopped by its PID (never by name), its log kept for failure messages.
// The binary comes from $BUSD_BIN (set by tests/node/run.sh and `make
// check`), else ../../src/broker/busd relative to clients/node; the tools
// from $BUSD_TOOLS, else ../../src/tools.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const clientDir = path.resolve(here, '..')
export const BUSD_BIN = process.env.BUSD_BIN || path.resolve(clientDir, '../../src/broker/busd')
export const BUSD_TOOLS = process.env.BUSD_TOOLS || path.resolve(clientDir, '../../src/tools')

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function canConnect (port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

// Poll `cond` (sync or async) until it is truthy; fail after `ms`.
export async function waitFor (cond, ms = 30000, what = 'condition') {
  const end = Date.now() + ms
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(20)
  }
}

export class Broker {
  constructor (args = []) {
    this.args = args
    this.dir = mkdtempSync(path.join(tmpdir(), 'busd-node-'))
    this.log = path.join(this.dir, 'busd.log')
    this.proc = null
  }

  async start (port) {
    if (!existsSync(BUSD_BIN)) throw new Error(`no busd at ${BUSD_BIN}: build it or set BUSD_BIN`)
    this.port = port ?? await freePort()
    this.endpoint = `tcp://127.0.0.1:${this.port}`
    const fd = openSync(this.log, 'a')
    this.proc = spawn(BUSD_BIN, ['--bind', this.endpoint, ...this.args], { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    const proc = this.proc
    let exited = false
    proc.once('exit', () => { exited = true })
    await waitFor(async () => {
      if (exited) throw new Error(`busd exited at start-up:\n${this.tail()}`)
      return canConnect(this.port)
    }, 30000, `busd to listen on ${this.endpoint}`)
    return this
  }

  get pid () { return this.proc ? this.proc.pid : null }

  async stop (signal = 'SIGTERM') {
    const proc = this.proc
    if (!proc) return
    this.proc = null
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const exited = once(proc, 'exit')
    process.kill(proc.pid, signal)
    const timer = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL') } catch {} }, 10000)
    await exited
    clearTimeout(timer)
  }

  tail (n = 30) {
    try { return readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n') } catch { return '' }
  }

  async cleanup () {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export async function startBroker (args = []) {
  return new Broker(args).start()
}

// Run a tool from src/tools; resolves to { code, stdout, stderr }.
export function runTool (name, args, { input, timeout = 60000, env } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(path.join(BUSD_TOOLS, name), args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, BUSD_ENDPOINT: '', ...env },
    })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d) => { stdout += d })
    proc.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL') } catch {} }, timeout)
    proc.on('error', reject)
    proc.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    if (input !== undefined) proc.stdin.end(input); else proc.stdin.end()
  })
}

// Start a tool in the background; returns the child process.
export function spawnTool (name, args, env) {
  return spawn(path.join(BUSD_TOOLS, name), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BUSD_ENDPOINT: '', ...env },
  })
}
