// Scenario, js-sdk side: the peer of a matrix-nio user in one encrypted room.
// It registers, says who it is (step "ready", detail.user_id), joins the first
// room it is invited to, decrypts the nio user's message, answers it
// encrypted, and exits once the answer is sent. The nio side is the Python test.
//
// Usage: node nio_peer.mjs BASE_URL [NAME_SUFFIX]
// The two messages are fixed: the Python test expects the same strings.

import {
  baseUrlFromArgs,
  firstInvite,
  nameSuffix,
  register,
  runScenario,
  sendText,
  startClient,
  step,
  waitForDecrypted,
} from "./lib.mjs";

const FROM_NIO = "hello from matrix-nio";
const FROM_JS = "hello back from matrix-js-sdk";

async function main() {
  const baseUrl = baseUrlFromArgs();
  const credentials = await step("register", () => register(baseUrl, `jsuser${nameSuffix()}`, "js peer"));
  const client = await step("Rust crypto, first sync (keys/upload)", () => startClient(baseUrl, credentials));
  await step("ready", async () => ({ user_id: client.getUserId(), device_id: client.getDeviceId() }), (who) => who);
  const roomId = await step("join the room nio invited to", async () => {
    const invited = await firstInvite(client);
    await client.joinRoom(invited);
    return invited;
  }, (roomId) => ({ room_id: roomId }));
  await step("decrypt nio's message (Olm room key from nio, Megolm event)", () =>
    waitForDecrypted(client, roomId, FROM_NIO),
  );
  await step("answer encrypted (keys/claim for nio's device, Olm room key to nio)", () =>
    sendText(client, roomId, FROM_JS),
  );
  client.stopClient();
}

runScenario(main);
