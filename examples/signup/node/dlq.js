// dlq.js — the dead-letter queue through CTL: `node dlq.js list` prints
// what is parked; `node dlq.js replay SUBSCRIPTION` sends the dead letters
// of that subscription (a queue group's name) back to it, and only to it.
import { connect } from '../../../clients/node/index.js'
import { endpoint } from './common.js'

const bus = await connect(endpoint, { name: 'dlq' })
try {
  if (process.argv[2] === 'replay') {
    const { dead_letters: list } = await bus.ctl({ cmd: 'dlq-list', topic: 'user.#' })
    const ids = list.filter((d) => d.subscription === process.argv[3]).map((d) => d.id)
    const r = ids.length ? await bus.ctl({ cmd: 'dlq-replay', ids }) : { replayed: 0 }
    console.log(`replayed ${r.replayed}`)
  } else {
    const { dead_letters: list } = await bus.ctl({ cmd: 'dlq-list', topic: 'user.#' })
    for (const d of list) {
      console.log(`${d.msg_id}  ${d.topic}  attempts ${d.attempts}  ${d.subscription}  ${d.reason}`)
    }
  }
} finally {
  await bus.close()
}
