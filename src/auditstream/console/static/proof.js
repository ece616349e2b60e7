// Inclusion proofs verified in the browser, with WebCrypto only.
//
// leaf  = SHA-256(0x00 || the stored event's bytes)      (RFC 9162 §2.1.1; the body that
//                                                          GET /v1/events/{id} answers IS
//                                                          the RFC 8785 bytes that were hashed)
// node  = SHA-256(0x01 || left || right)
// path  → root by RFC 9162 §2.1.3.2, compared with the root of the signed checkpoint
// note  = C2SP signed note: Ed25519 over the body (up to and including its last newline),
//         signature line "— <name> base64(keyid(4) || sig(64))", checked against the
//         published verifier key "<name>+<hex keyid>+base64(0x01 || pubkey)".

const enc = new TextEncoder();

export function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function leafHash(bytes) {
  return sha256(concat(new Uint8Array([0]), bytes));
}

async function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

// RFC 9162 §2.1.3.2: the root that `path` leads to from leaf `index` of a tree of `size`,
// or null when the path cannot belong to such a tree.
export async function rootFromPath(leaf, index, size, path) {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) {
    return null;
  }
  let fn = index, sn = size - 1, r = leaf;
  for (const p of path) {
    if (p.length !== 32 || sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

export function parseNote(note) {
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0) throw new Error("the checkpoint is not a signed note (no blank line)");
  const body = note.slice(0, cut + 1);
  const sigs = note.slice(cut + 2).split("\n").filter((l) => l !== "").map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Error("malformed signature line");
    const raw = b64decode(m[2]);
    if (raw.length !== 68) throw new Error("signature of unexpected length");
    return { name: m[1], keyId: raw.slice(0, 4), sig: raw.slice(4) };
  });
  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) {
    throw new Error("malformed checkpoint body");
  }
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new Error("checkpoint root is not 32 bytes");
  return { body, origin: lines[0], size: Number(lines[1]), root, sigs };
}

export function parseVerifierKey(text) {
  // <name>+<8 hex>+<base64>: names hold no "+", base64 may.
  const m = /^([^+\s]+)\+([0-9a-fA-F]{8})\+([A-Za-z0-9+/=]+)$/.exec(text.trim());
  if (!m) throw new Error("malformed verifier key");
  const raw = b64decode(m[3]);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 verifier key");
  return { name: m[1], keyId: m[2].toLowerCase(), pub: raw.slice(1) };
}

// true / false, or null when this browser's WebCrypto has no Ed25519.
export async function verifyEd25519(pub, sig, message) {
  let key;
  try {
    key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  } catch (err) {
    if (err && (err.name === "NotSupportedError" || err.name === "SyntaxError" ||
                err.name === "TypeError")) return null;
    throw err;
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, message);
}

// Everything the browser can check about one event. `raw`: the bytes of GET
// /v1/events/{id}; `proof`: the `proof` of GET /v1/events/{id}?include=proof; `vkey`: the
// text of GET /v1/integrity/public-key. Answers {ok, signature, checkpointSize, steps,
// error}: ok is false with `error` saying the first check that failed; `signature` is
// "verified", "unsupported" (no Ed25519 in this browser) or "failed".
export async function verifyEvent(raw, event, proof, vkey) {
  const steps = [];
  const fail = (error) => ({ ok: false, error, steps, checkpointSize: null, signature: null });
  try {
    const given = b64decode(proof.leaf_hash);
    if (event.redacted) {
      steps.push("content redacted: the leaf hash is the log's own (the erased bytes cannot be rehashed)");
    } else {
      const leaf = await leafHash(raw);
      if (!equal(leaf, given)) return fail("the event's bytes do not hash to the proof's leaf");
      steps.push("leaf hash = SHA-256(0x00 || event bytes) ✓");
    }
    if (proof.leaf_index !== event.seq - 1) return fail("the proof is for another position than the event's seq");
    const path = proof.inclusion_path.map(b64decode);
    const root = await rootFromPath(given, proof.leaf_index, proof.tree_size, path);
    if (root === null) return fail("the inclusion path does not fit the tree size");
    const cp = parseNote(proof.checkpoint);
    if (cp.size !== proof.tree_size) return fail("the checkpoint is of another tree size");
    if (!cp.origin.endsWith("/" + event.tenant)) return fail("the checkpoint is of another log");
    if (!equal(root, cp.root)) return fail("the inclusion path does not lead to the checkpoint's root");
    steps.push(`inclusion path of ${path.length} hashes leads to the root of checkpoint ${cp.size} ✓`);
    const key = parseVerifierKey(vkey);
    const mine = cp.sigs.filter((s) => s.name === key.name && hex(s.keyId) === key.keyId);
    if (!mine.length) return fail("the checkpoint has no signature by the published key");
    let signature = "verified";
    for (const s of mine) {
      const good = await verifyEd25519(key.pub, s.sig, enc.encode(cp.body));
      if (good === null) { signature = "unsupported"; break; }
      if (!good) return fail("the checkpoint's Ed25519 signature does not verify");
    }
    steps.push(signature === "verified"
      ? `Ed25519 signature by ${key.name} ✓`
      : "signature NOT checked: this browser's WebCrypto has no Ed25519");
    return { ok: true, signature, checkpointSize: cp.size, steps, error: null };
  } catch (err) {
    return fail(String(err && err.message ? err.message : err));
  }
}
