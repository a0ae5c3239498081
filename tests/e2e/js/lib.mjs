// What the scenario scripts share: a logged-in matrix-js-sdk client with Rust
// crypto in Node, waiting helpers, and a step log the Python tests read.
//
// Protocol with the Python side: every line on stdout is `STEP <json>`;
// matrix-js-sdk's own logging goes to stderr. A scenario ends with exit code 0
// after its last step, or prints a failed step (`ok: false`, with the error)
// and exits 1, so the Python test can say which step of the flow broke.

import { createClient, ClientEvent, MatrixError } from "matrix-js-sdk";

export const PASSWORD = "correct horse battery staple 42";
export const MEGOLM = "m.megolm.v1.aes-sha2";
const WAIT_MS = 15000;

// The SDK logs through console.*: keep stdout for the step protocol.
for (const name of ["log", "info", "debug", "trace"]) {
  console[name] = (...args) => console.error(...args);
}

export function emit(record) {
  process.stdout.write(`STEP ${JSON.stringify(record)}\n`);
}

/**
 * Run `fn` as the named step and return its result; log the step as passed
 * (with `summarize(result)` as detail, if given), or as failed and rethrow.
 */
export async function step(name, fn, summarize = null) {
  const started = Date.now();
  try {
    const result = await fn();
    const detail = summarize ? summarize(result) : undefined;
    emit({ step: name, ok: true, ms: Date.now() - started, ...(detail ? { detail } : {}) });
    return result;
  } catch (error) {
    emit({ step: name, ok: false, ms: Date.now() - started, error: describe(error) });
    throw error;
  }
}

export function describe(error) {
  if (error instanceof MatrixError) {
    return `HTTP ${error.httpStatus} ${error.errcode}: ${error.message}`;  // the message names the URL
  }
  return error && error.stack ? error.stack : String(error);
}

/** Run a whole scenario: exit 0 when `main` resolves, 1 (after logging) when it throws. */
export function runScenario(main) {
  const timer = setTimeout(() => {
    emit({ step: "scenario", ok: false, error: "scenario timed out after 50 s" });
    process.exit(1);
  }, 50000);
  main().then(
    () => {
      clearTimeout(timer);
      emit({ step: "done", ok: true });
      process.exit(0);
    },
    (error) => {
      clearTimeout(timer);
      console.error(describe(error));
      process.exit(1);
    },
  );
}

export function baseUrlFromArgs() {
  const baseUrl = process.argv[2];
  if (!baseUrl) throw new Error("usage: node SCRIPT BASE_URL [NAME_SUFFIX]");
  return baseUrl;
}

export function nameSuffix() {
  return process.argv[3] || "";
}

/** Register `username` with the m.login.dummy stage; returns the new user's credentials. */
export async function register(baseUrl, username, deviceName) {
  const anonymous = createClient({ baseUrl });
  return await anonymous.registerRequest({
    username,
    password: PASSWORD,
    auth: { type: "m.login.dummy" },
    initial_device_display_name: deviceName,
  });
}

/** Log in with a password, which makes a new device. */
export async function login(baseUrl, userId, deviceName) {
  const anonymous = createClient({ baseUrl });
  return await anonymous.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: userId },
    password: PASSWORD,
    initial_device_display_name: deviceName,
  });
}

/**
 * A started client with Rust crypto for `credentials`, after its first sync.
 *
 * `secretStorageKeys` maps secret-storage key ids to private keys: what a user
 * would type in as their recovery key, handed to the SDK on request.
 */
export async function startClient(baseUrl, credentials, secretStorageKeys = new Map()) {
  const client = createClient({
    baseUrl,
    userId: credentials.user_id,
    deviceId: credentials.device_id,
    accessToken: credentials.access_token,
    cryptoCallbacks: {
      getSecretStorageKey: async ({ keys }) => {
        const known = Object.keys(keys).find((id) => secretStorageKeys.has(id));
        return known ? [known, secretStorageKeys.get(known)] : null;
      },
      cacheSecretStorageKey: (keyId, _keyInfo, key) => secretStorageKeys.set(keyId, key),
    },
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise((resolve, reject) => {
    client.on(ClientEvent.Sync, (state, _previous, data) => {
      if (state === "PREPARED") resolve();
      if (state === "ERROR") reject(new Error(`sync failed: ${describe(data && data.error)}`));
    });
  });
  await client.startClient({ initialSyncLimit: 20 });
  await withTimeout(prepared, "the first /sync");
  return client;
}

export async function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `probe` until it returns something truthy; fail with `explain()` after a while. */
export async function waitFor(probe, what, explain = () => "", ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const result = await probe();
    if (result) return result;
    if (Date.now() > deadline) {
      const why = explain();
      throw new Error(`timed out after ${ms} ms waiting for ${what}${why ? `: ${why}` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** An encrypted room `client` created with `invite`d users, encrypted from its first event. */
export async function createEncryptedRoom(client, name, invite) {
  const { room_id: roomId } = await client.createRoom({
    name,
    preset: "private_chat",
    invite,
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: MEGOLM } }],
  });
  await waitFor(
    () => client.getRoom(roomId) && client.getRoom(roomId).hasEncryptionStateEvent(),
    `${roomId} with m.room.encryption in ${client.getUserId()}'s sync`,
  );
  return roomId;
}

/** Join once the invite to `roomId` has come down `client`'s sync. */
export async function joinWhenInvited(client, roomId) {
  await waitFor(
    () => client.getRoom(roomId) && client.getRoom(roomId).getMyMembership() === "invite",
    `the invite to ${roomId} in ${client.getUserId()}'s sync`,
  );
  await client.joinRoom(roomId);
}

/** The first room `client` is invited to, once its sync shows one. */
export async function firstInvite(client) {
  const room = await waitFor(
    () => client.getRooms().find((r) => r.getMyMembership() === "invite"),
    `an invite in ${client.getUserId()}'s sync`,
  );
  return room.roomId;
}

export async function waitForMembership(client, roomId, userId, membership) {
  await waitFor(
    () => {
      const member = client.getRoom(roomId) && client.getRoom(roomId).getMember(userId);
      return member && member.membership === membership;
    },
    `${userId} to ${membership} ${roomId} in ${client.getUserId()}'s sync`,
  );
}

function timelineEvents(client, roomId) {
  const room = client.getRoom(roomId);
  return room ? room.getLiveTimeline().getEvents() : [];
}

/**
 * The event of `roomId` that arrived encrypted and decrypts to an m.text `body`.
 *
 * On a timeout the error lists what the timeline holds instead, with the
 * SDK's reason for each event it could not decrypt.
 */
export async function waitForDecrypted(client, roomId, body, ms = WAIT_MS) {
  return await waitFor(
    () =>
      timelineEvents(client, roomId).find(
        (ev) => ev.isEncrypted() && ev.getType() === "m.room.message" && ev.getContent().body === body,
      ),
    `${client.getUserId()} to decrypt ${JSON.stringify(body)} in ${roomId}`,
    () =>
      timelineEvents(client, roomId)
        .filter((ev) => ev.isEncrypted() || ev.getType() === "m.room.message")
        .map((ev) =>
          ev.isDecryptionFailure()
            ? `${ev.getId()} undecryptable (${ev.decryptionFailureReason})`
            : `${ev.getId()} ${ev.getType()} ${JSON.stringify(ev.getContent().body)}`,
        )
        .join("; ") || "no encrypted events in the timeline",
    ms,
  );
}

/** Send an m.text message; it must go out as m.room.encrypted. */
export async function sendText(client, roomId, body) {
  const { event_id: eventId } = await client.sendMessage(roomId, { msgtype: "m.text", body });
  const sent = await waitFor(
    () => timelineEvents(client, roomId).find((ev) => ev.getId() === eventId),
    `${eventId} in ${client.getUserId()}'s own timeline`,
  );
  if (sent.getWireType() !== "m.room.encrypted") {
    throw new Error(`${eventId} went out as ${sent.getWireType()}, not m.room.encrypted`);
  }
  return eventId;
}

/**
 * The answer to user-interactive auth with a password, the way Element does it:
 * first without auth (the spec lets a server accept a first cross-signing upload
 * so), then with the session the server's 401 offered. `record.uia` says which.
 */
export function passwordAuth(userId, record = {}) {
  return async (makeRequest) => {
    try {
      await makeRequest(null);
      record.uia = "none needed";
      return;
    } catch (error) {
      if (!(error instanceof MatrixError) || error.httpStatus !== 401 || !error.data || !error.data.flows) {
        throw error;
      }
      const flows = error.data.flows.map((f) => f.stages.join(","));
      if (!flows.includes("m.login.password")) {
        throw new Error(`UIA offers no m.login.password flow: ${JSON.stringify(error.data.flows)}`);
      }
      await makeRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password: PASSWORD,
        session: error.data.session,
      });
      record.uia = "m.login.password";
    }
  };
}
