// Encoders and decoders against byte vectors written out by hand from
// doc/protocol.md §3.4 and, for the batch commands, PROTOCOL §8.2.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  decode, decodeDeliverRecords, encodeHello, encodePub, encodePubb, encodeSub, encodeUnsub,
  encodeCredit, encodeAck, encodeAckb, encodeNack, encodePing, encodePong, encodeBye, encodeCtl,
  parseJson, stringifyJson, ProtocolError, CMD,
} from '../lib/codec.js'
import { topicError, patternError } from '../lib/topic.js'

const hex = (s) => Buffer.from(s.replace(/[\s|]+/g, ''), 'hex')
const text = (s) => Buffer.from(s, 'utf8')

test('client headers match doc/protocol.md §3.4', () => {
  assert.deepEqual(encodeHello('demo'), hex('b5 01 0001 04 64656d6f'))
  assert.deepEqual(encodePub(1, 'user.created', 'ord-7'),
    hex('b5 10 0000000000000001 0c 757365722e63726561746564 05 6f72642d37'))
  assert.deepEqual(encodeSub(1, 'user.#'), hex('b5 20 00000001 06 757365722e23'))
  assert.deepEqual(encodeAck(1, 1n), hex('b5 23 00000001 0000000000000001'))
  assert.deepEqual(encodeNack(1, 2n, 0, 5000), hex('b5 24 00000001 0000000000000002 00 00001388'))
  assert.deepEqual(encodeCredit(1, 500), hex('b5 22 00000001 000001f4'))
  assert.deepEqual(encodePing(42n), hex('b5 30 000000000000002a'))
  assert.deepEqual(encodePong(0xfedcba9876543210n), hex('b5 31 fedcba9876543210'))
  assert.deepEqual(encodeUnsub(1), hex('b5 21 00000001'))
  assert.deepEqual(encodeCtl(7), hex('b5 40 00000007'))
  assert.deepEqual(encodeBye(), hex('b5 3f'))
})

test('str8 fields longer than 255 bytes are refused, counted in bytes', () => {
  assert.throws(() => encodePub(1, 'a'.repeat(256), ''), RangeError)
  assert.throws(() => encodePub(1, 'é'.repeat(128), ''), /256 bytes/)
  assert.doesNotThrow(() => encodePub(1, 'a'.repeat(255), 'b'.repeat(255)))
  assert.throws(() => encodeSub(1, 'x'.repeat(300)), RangeError)
  assert.throws(() => encodeHello('n'.repeat(256)), RangeError)
})

test('broker headers decode as doc/protocol.md §3.4 shows them', () => {
  const w = decode([hex('b5 02 0001 15 627573642d33663961306331326434653562363738 000003e8 00100000'),
    text('{"session_timeout_ms":15000,"heartbeat_ms":5000}')])
  assert.equal(w.cmd, CMD.WELCOME)
  assert.equal(w.version, 1)
  assert.equal(w.brokerId, 'busd-3f9a0c12d4e5b678')
  assert.equal(w.pubCredit, 1000)
  assert.equal(w.maxPayload, 1048576)
  assert.equal(parseJson(w.body).heartbeat_ms, 5000)

  const a = decode([hex('b5 12 0000000000000001 00000001')])
  assert.equal(a.pubSeq, 1n)
  assert.equal(a.credit, 1)

  const d = decode([
    hex('b5 26 00000001 0000000000000001 0000000000000000 000619c23237ad80 0001 ' +
        '0c 757365722e63726561746564 05 6f72642d37'),
    hex('7b226964223a377d'),
    hex('7b227472616365223a227831227d')])
  assert.equal(d.subId, 1)
  assert.equal(d.deliveryId, 1n)
  assert.equal(d.streamSeq, 0n)
  assert.equal(d.tsUs, 1717171717123456n)
  assert.equal(d.attempt, 1)
  assert.equal(d.topic, 'user.created')
  assert.equal(d.msgId, 'ord-7')
  assert.equal(d.payload.toString(), '{"id":7}')
  assert.equal(d.headers.toString(), '{"trace":"x1"}')

  const r = decode([hex('b5 13 0000000000000003 0193 0c 73797374656d20746f706963')])
  assert.deepEqual([r.pubSeq, r.code, r.reason], [3n, 403, 'system topic'])
  const g = decode([hex('b5 27 00000001 0000000000000003')])
  assert.deepEqual([g.subId, g.dropped], [1, 3n])
  const e = decode([hex('b5 2f 00000001 00c8 0c 756e73756273637269626564')])
  assert.deepEqual([e.subId, e.code, e.reason], [1, 200, 'unsubscribed'])
  const x = decode([hex('b5 3e 0191 0a 6e6f2073657373696f6e')])
  assert.deepEqual([x.code, x.reason], [401, 'no session'])
  const c = decode([hex('b5 41 00000007 00c8'), text('{}')])
  assert.deepEqual([c.requestId, c.code], [7, 200])
  const p = decode([hex('b5 30 ffffffffffffffff')])
  assert.equal(p.nonce, 0xffffffffffffffffn)
})

test('malformed broker messages are refused', () => {
  assert.throws(() => decode([hex('')]), ProtocolError)
  assert.throws(() => decode([hex('b4 12 0000000000000001 00000001')]), /signature/)
  assert.throws(() => decode([hex('b5 12 0000000000000001 000000')]), /ends after/)
  assert.throws(() => decode([hex('b5 12 0000000000000001 0000000100')]), /after the last field/)
  assert.throws(() => decode([hex('b5 13 0000000000000003 0193 0d 73797374656d20746f706963')]), ProtocolError)
  assert.throws(() => decode([hex('b5 10 0000000000000001 00 00')]), /not sent by a broker/)
  assert.throws(() => decode([hex('b5 77')]), ProtocolError)
  assert.throws(() => decode([hex('b5 12 0000000000000001 00000001'), text('x')]), /frames/)
  assert.throws(() => decode([hex('b5 27 00000001 0000000000000003'), hex('')]), /frames/)
})

// ---------------------------------------------------------------- PROTOCOL §8.2

test('PUBB: header and records as PROTOCOL §8.2 lays them out', () => {
  const [h, body] = encodePubb(5n, [
    { topic: 'a.b', msgId: '', headers: null, payload: text('x') },
    { topic: text('c'), msgId: 'id', headers: text('{"k":"v"}'), payload: Buffer.alloc(0) },
  ])
  assert.deepEqual(h, hex('b5 11 | 0000000000000005 | 0002'))
  assert.deepEqual(body, hex(
    '03 612e62 | 00 | 00000000 | 00000001 78' + // a.b, no msg_id, no headers, "x"
    '01 63 | 02 6964 | 00000009 7b226b223a2276227d | 00000000')) // c, "id", {"k":"v"}, empty
  assert.throws(() => encodePubb(1, []), RangeError)
  assert.throws(() => encodePubb(1, [{ topic: 't'.repeat(256), msgId: '', headers: null, payload: text('') }]),
    RangeError)
})

// The worked hex examples for PROTOCOL §8 (PUBB, DELIVERB, ACKB) that
// doc/protocol.md §10 gives with the broker's batch support, byte for byte.
test('PUBB, DELIVERB, ACKB: the worked hex examples of doc/protocol.md §10', () => {
  const [ph, pb] = encodePubb(5, [
    { topic: 'a.b', msgId: '', headers: null, payload: text('hi') },
    { topic: 'c', msgId: 'id', headers: text('{"k":"v"}'), payload: text('') },
  ])
  assert.deepEqual(ph, hex('b5 11 00 00 00 00 00 00 00 05 00 02'))
  assert.deepEqual(pb, hex('03 61 2e 62 00 00 00 00 00 00 00 00 02 68 69 01 63 02 69 64 ' +
    '00 00 00 09 7b 22 6b 22 3a 22 76 22 7d 00 00 00 00'))
  assert.equal(pb.length, 37)

  const d = decode([hex('b5 28 00 01'), hex('00 00 00 07 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 ' +
    '00 06 0a 24 18 1e 40 00 00 01 03 61 2e 62 00 00 00 00 00 00 00 00 02 68 69')])
  assert.equal(d.records.length, 1)
  assert.deepEqual({ ...d.records[0], payload: d.records[0].payload.toString() }, {
    subId: 7, deliveryId: 1n, streamSeq: 0n, tsUs: 1700000000000000n, attempt: 1,
    topic: 'a.b', msgId: '', headers: null, payload: 'hi',
  })

  const [ah, ab] = encodeAckb([{ subId: 7, deliveryId: 1n }, { subId: 7, deliveryId: 2n }])
  assert.deepEqual(ah, hex('b5 29 00 02'))
  assert.deepEqual(ab, hex('00 00 00 07 00 00 00 00 00 00 00 01 00 00 00 07 00 00 00 00 00 00 00 02'))
})

test('ACKB: header and 12-byte records', () => {
  const [h, body] = encodeAckb([{ subId: 1, deliveryId: 1n }, { subId: 2, deliveryId: 9007199254740993n }])
  assert.deepEqual(h, hex('b5 29 0002'))
  assert.deepEqual(body, hex('00000001 0000000000000001 | 00000002 0020000000000001'))
})

const DELIVERB_BODY =
  // record 1: the DELIVER of doc/protocol.md §3.4, with headers and payload
  '00000001 0000000000000001 0000000000000000 000619c23237ad80 0001 ' +
  '0c 757365722e63726561746564 05 6f72642d37 ' +
  '0000000e 7b227472616365223a227831227d 00000008 7b226964223a377d' +
  // record 2: sub 2, delivery_id 2^53+1, stream_seq 7, ts_us -1, attempt 2,
  // topic "a", no msg_id, no headers, empty payload
  '| 00000002 0020000000000001 0000000000000007 ffffffffffffffff 0002 01 61 00 00000000 00000000'

test('DELIVERB: records decode with u64 as BigInt and i64 ts_us', () => {
  const m = decode([hex('b5 28 0002'), hex(DELIVERB_BODY)])
  assert.equal(m.cmd, CMD.DELIVERB)
  assert.equal(m.count, 2)
  const [a, b] = m.records
  assert.equal(a.subId, 1)
  assert.equal(a.deliveryId, 1n)
  assert.equal(a.tsUs, 1717171717123456n)
  assert.equal(a.attempt, 1)
  assert.equal(a.topic, 'user.created')
  assert.equal(a.msgId, 'ord-7')
  assert.equal(a.headers.toString(), '{"trace":"x1"}')
  assert.equal(a.payload.toString(), '{"id":7}')
  assert.equal(b.subId, 2)
  assert.equal(b.deliveryId, 9007199254740993n)
  assert.equal(b.streamSeq, 7n)
  assert.equal(b.tsUs, -1n)
  assert.equal(b.attempt, 2)
  assert.equal(b.topic, 'a')
  assert.equal(b.msgId, '')
  assert.equal(b.headers, null)
  assert.equal(b.payload.length, 0)
})

test('DELIVERB: a body that does not hold exactly count records is refused', () => {
  const body = hex(DELIVERB_BODY)
  assert.throws(() => decodeDeliverRecords(3, body), /ends after/)
  assert.throws(() => decodeDeliverRecords(1, body), /after the last field/)
  assert.throws(() => decodeDeliverRecords(2, Buffer.concat([body, hex('00')])), /after the last field/)
  assert.throws(() => decodeDeliverRecords(2, body.subarray(0, body.length - 1)), ProtocolError)
  assert.throws(() => decodeDeliverRecords(0, hex('')), /count 0/)
  assert.throws(() => decode([hex('b5 28 0002 00'), body]), /after the last field/)
  // a payload_size that runs past the body
  assert.throws(() => decodeDeliverRecords(1, hex(
    '00000001 0000000000000001 0000000000000000 0000000000000000 0001 01 61 00 00000000 00000005 6162')),
  /ends after/)
})

// ---------------------------------------------------------------- JSON and topics

test('JSON: integers beyond 2^53 become BigInt, strings are left alone', () => {
  const v = parseJson('{"a":18446744073709551615,"b":5,"c":"12345678901234567890","d":[9007199254740993],' +
    '"e":1.5e300,"f":-9007199254740993,"g":9007199254740991}')
  assert.equal(v.a, 18446744073709551615n)
  assert.equal(v.b, 5)
  assert.equal(v.c, '12345678901234567890')
  assert.equal(v.d[0], 9007199254740993n)
  assert.equal(v.e, 1.5e300)
  assert.equal(v.f, -9007199254740993n)
  assert.equal(v.g, 9007199254740991)
  assert.equal(stringifyJson({ ids: [18446744073709551615n, 1], s: 'x' }),
    '{"ids":[18446744073709551615,1],"s":"x"}')
})

test('topics and patterns follow doc/protocol.md §2.1', () => {
  const ok = (s) => topicError(Buffer.from(s)) === null
  const pok = (s) => patternError(Buffer.from(s)) === null
  for (const t of ['user.created', 'a', 'orders/eu-west:v2', '$sys.stats', 'a'.repeat(255)]) assert.ok(ok(t), t)
  for (const t of ['', '.user', 'user.', 'user..created', 'user created', 'café', 'user.*', 'user.#',
    'a'.repeat(256)]) {
    assert.ok(!ok(t), t)
  }
  for (const p of ['#', 'user.*', 'user.#', '*.created.#', '$dlq.#', 'a.*.#']) assert.ok(pok(p), p)
  for (const p of ['', 'user*', 'user.cre*', 'user.#.created', 'user.##', '#x', 'a..b', 'x'.repeat(256)]) {
    assert.ok(!pok(p), p)
  }
})
