// The HPACK decoder (src/protocol/hpack.ts) against RFC 7541 Appendix C: each example's header
// list and the dynamic table after it, the request and response series decoded in order by one
// decoder (the table carries over), with and without Huffman coding; and malformed blocks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HpackDecoder, huffmanCodes, type HeaderField } from "../../src/protocol/hpack";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

interface Step {
  block: string;
  fields: HeaderField[];
  /** Newest first. */
  table: HeaderField[];
  size: number;
}

function series(maxSize: number, steps: Step[]): void {
  const decoder = new HpackDecoder(maxSize);
  for (const [i, step] of steps.entries()) {
    assert.deepEqual(decoder.decode(hex(step.block)), step.fields, `step ${i + 1}`);
    assert.deepEqual(decoder.entries, step.table, `table after step ${i + 1}`);
    assert.equal(decoder.size, step.size, `table size after step ${i + 1}`);
  }
}

test("C.2: each field representation on its own", () => {
  const one = (block: string, fields: HeaderField[], table: HeaderField[]) => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex(block)), fields);
    assert.deepEqual(d.entries, table);
  };
  // C.2.1 literal with indexing, C.2.2 without indexing, C.2.3 never indexed, C.2.4 indexed
  one("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", [["custom-key", "custom-header"]], [["custom-key", "custom-header"]]);
  one("040c 2f73 616d 706c 652f 7061 7468", [[":path", "/sample/path"]], []);
  one("1008 7061 7373 776f 7264 0673 6563 7265 74", [["password", "secret"]], []);
  one("82", [[":method", "GET"]], []);
});

const request1: HeaderField[] = [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]];
const request2: HeaderField[] = [...request1, ["cache-control", "no-cache"]];
const request3: HeaderField[] = [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"]];
const requestTables: HeaderField[][] = [
  [[":authority", "www.example.com"]],
  [["cache-control", "no-cache"], [":authority", "www.example.com"]],
  [["custom-key", "custom-value"], ["cache-control", "no-cache"], [":authority", "www.example.com"]],
];

test("C.3: three requests on one connection, without Huffman coding", () => {
  series(4096, [
    { block: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", fields: request1, table: requestTables[0]!, size: 57 },
    { block: "8286 84be 5808 6e6f 2d63 6163 6865", fields: request2, table: requestTables[1]!, size: 110 },
    { block: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", fields: request3, table: requestTables[2]!, size: 164 },
  ]);
});

test("C.4: the same requests with Huffman coding", () => {
  series(4096, [
    { block: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", fields: request1, table: requestTables[0]!, size: 57 },
    { block: "8286 84be 5886 a8eb 1064 9cbf", fields: request2, table: requestTables[1]!, size: 110 },
    { block: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", fields: request3, table: requestTables[2]!, size: 164 },
  ]);
});

const date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const location = "https://www.example.com";
const cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const response1: HeaderField[] = [[":status", "302"], ["cache-control", "private"], ["date", date1], ["location", location]];
const response2: HeaderField[] = [[":status", "307"], ["cache-control", "private"], ["date", date1], ["location", location]];
const response3: HeaderField[] = [[":status", "200"], ["cache-control", "private"], ["date", date2], ["location", location], ["content-encoding", "gzip"], ["set-cookie", cookie]];
// a 256-octet table: the second response evicts :status 302, the third evicts three entries
const responseTables: HeaderField[][] = [
  [["location", location], ["date", date1], ["cache-control", "private"], [":status", "302"]],
  [[":status", "307"], ["location", location], ["date", date1], ["cache-control", "private"]],
  [["set-cookie", cookie], ["content-encoding", "gzip"], ["date", date2]],
];

test("C.5: three responses with evictions (256-octet table), without Huffman coding", () => {
  series(256, [
    {
      block: `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
              2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      fields: response1, table: responseTables[0]!, size: 222,
    },
    { block: "4803 3330 37c1 c0bf", fields: response2, table: responseTables[1]!, size: 222 },
    {
      block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
              54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
              5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
      fields: response3, table: responseTables[2]!, size: 215,
    },
  ]);
});

test("C.6: the same responses with Huffman coding", () => {
  series(256, [
    {
      block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
              2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      fields: response1, table: responseTables[0]!, size: 222,
    },
    { block: "4883 640e ffc1 c0bf", fields: response2, table: responseTables[1]!, size: 222 },
    {
      block: `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
              77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
              9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
      fields: response3, table: responseTables[2]!, size: 215,
    },
  ]);
});

test("the Huffman code is RFC 7541's: a complete prefix code whose EOS is thirty 1 bits, 'a' is 00011, '0' is 00000", () => {
  const codes = huffmanCodes();
  assert.equal(codes.length, 257);
  assert.equal(codes.reduce((sum, [, length]) => sum + 2 ** -length, 0), 1, "Kraft sum of a complete code");
  assert.deepEqual(codes[256], [0x3fffffff, 30]);
  assert.deepEqual(codes["a".charCodeAt(0)], [0b00011, 5]);
  assert.deepEqual(codes["0".charCodeAt(0)], [0, 5]);
  assert.deepEqual(codes[0], [0x1ff8, 13]);
});

test("table size updates: evict at once, only at a block's start, and a zero-size table holds nothing", () => {
  const d = new HpackDecoder();
  d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")); // custom-key: custom-header (55 octets)
  assert.equal(d.size, 55);
  d.decode(hex("20")); // size update to 0
  assert.deepEqual(d.entries, []);
  assert.equal(d.maxSize, 0);
  d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
  assert.deepEqual(d.entries, [], "an entry larger than the table is not added");
  // 0x3f 0xe1 0x1f: size 4096 (31 + 0x61 + 0x1f * 128), then the field
  assert.deepEqual(d.decode(hex("3fe1 1f 82")), [[":method", "GET"]]);
  assert.equal(d.maxSize, 4096);
  assert.throws(() => d.decode(hex("82 20")), /table size update after a field/);
});

test("malformed blocks throw (the reader stops on them); the RFC's invalid Huffman paddings and EOS are refused", () => {
  const bad = (block: string, why: RegExp) => assert.throws(() => new HpackDecoder().decode(hex(block)), why);
  bad("80", /index 0/);
  bad("be", /beyond the dynamic table/);
  bad("ff", /truncated integer/);
  bad("ffffffffffff01", /integer too large/);
  bad("400a 6375 73", /string longer than its block/);
  bad("3fe1ff7f", /table size/); // an update to 2 MiB, beyond any table
  // literal value "a" Huffman-coded with too much padding, padding that is not 1s, and EOS inside
  bad("0481 ff", /padding/); // 8 bits of padding
  bad("0482 1fff", /padding/);
  bad("0481 00", /padding/); // "0" then 3 zero bits
  bad("0485 ffff ffff fc", /EOS/);
  // an incomplete integer in the name index, then nothing
  bad("7f", /truncated integer/);
});
