// Scenario: two matrix-js-sdk users with Rust crypto chat in an encrypted room;
// alice bootstraps cross-signing, secret storage and a key backup; a second login
// of alice restores the room keys from the backup and decrypts an old message.
//
// Usage: node two_clients_backup.mjs BASE_URL [NAME_SUFFIX]

import { ClientPrefix, Method } from "matrix-js-sdk";
import {
  baseUrlFromArgs,
  createEncryptedRoom,
  joinWhenInvited,
  login,
  nameSuffix,
  passwordAuth,
  register,
  runScenario,
  sendText,
  startClient,
  step,
  waitFor,
  waitForDecrypted,
  waitForMembership,
} from "./lib.mjs";

const SECRETS = ["m.cross_signing.master", "m.cross_signing.self_signing", "m.cross_signing.user_signing",
  "m.megolm_backup.v1"];

const OLD_MESSAGE = "before the second login: from alice's first device";

async function backupCount(client) {
  const version = await client.http.authedRequest(Method.Get, "/room_keys/version", undefined, undefined, {
    prefix: ClientPrefix.V3,
  });
  return version.count;
}

async function main() {
  const baseUrl = baseUrlFromArgs();
  const suffix = nameSuffix();
  const secretStorageKeys = new Map();

  const [aliceCreds, bobCreds] = await step("register alice and bob", async () =>
    Promise.all([
      register(baseUrl, `alice${suffix}`, "alice's js laptop"),
      register(baseUrl, `bob${suffix}`, "bob's js phone"),
    ]),
  );
  const alice = await step("alice: Rust crypto, first sync (keys/upload)", () =>
    startClient(baseUrl, aliceCreds, secretStorageKeys),
  );
  const bob = await step("bob: Rust crypto, first sync (keys/upload)", () => startClient(baseUrl, bobCreds));
  const aliceId = alice.getUserId();
  const bobId = bob.getUserId();

  await step("alice: bootstrap cross-signing (keys/device_signing/upload, keys/signatures/upload)", async () => {
    const crypto = alice.getCrypto();
    const auth = {};
    await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(aliceId, auth) });
    const status = await crypto.getCrossSigningStatus();
    if (!status.publicKeysOnDevice || !(await crypto.isCrossSigningReady())) {
      throw new Error(`cross-signing not ready after bootstrap: ${JSON.stringify(status)}`);
    }
    // Her client learns of the new signature on her device from /keys/query, once her
    // sync lists her own user in device_lists.changed.
    await waitFor(
      async () => {
        const own = await crypto.getDeviceVerificationStatus(aliceId, alice.getDeviceId());
        return own && own.signedByOwner;
      },
      "alice's device to show as signed by her self-signing key",
    );
    if (auth.uia !== "none needed") {
      throw new Error(`the first upload of cross-signing keys asked for auth (${auth.uia}): the spec exempts it`);
    }
  });
  await step("alice: reset cross-signing, which needs her password (UIA)", async () => {
    const auth = {};
    await alice.getCrypto().bootstrapCrossSigning({
      setupNewCrossSigning: true,
      authUploadDeviceSigningKeys: passwordAuth(aliceId, auth),
    });
    if (auth.uia !== "m.login.password") {
      throw new Error(`replacing cross-signing keys went through without user-interactive auth (${auth.uia})`);
    }
  });

  await step("alice: secret storage and a new key backup (room_keys/version)", async () => {
    const crypto = alice.getCrypto();
    await crypto.bootstrapSecretStorage({
      createSecretStorageKey: () => crypto.createRecoveryKeyFromPassphrase(),
      setupNewSecretStorage: true,
      setupNewKeyBackup: true,
    });
    const version = await waitFor(
      () => crypto.getActiveSessionBackupVersion(),
      "the new key backup to become active",
    );
    // The client learns of the keys it just stored through its next /keys/query: wait for it.
    // Rarely (about 1 run in 10 on a loaded machine) the Rust crypto takes longer than the usual
    // 15 s here although every request is answered in milliseconds; on a timeout the message
    // says which secrets the client holds, to tell a server-side miss from a client-side wait.
    await waitFor(
      () => crypto.isSecretStorageReady(),
      "secret storage to be ready",
      () => SECRETS.map((type) => {
        const event = alice.getAccountData(type);
        const keys = event ? Object.keys(event.getContent().encrypted || {}) : [];
        return `${type}: ${event ? `encrypted for ${JSON.stringify(keys)}` : "not received"}`;
      }).join("; ") + `; default key ${JSON.stringify(alice.getAccountData("m.secret_storage.default_key")?.getContent())}`,
      45000,
    );
    return version;
  }, (version) => ({ version }));

  const roomId = await step("alice: create an encrypted room and invite bob", () =>
    createEncryptedRoom(alice, "js room", [bobId]),
  );
  await step("bob: join", () => joinWhenInvited(bob, roomId));
  await step("alice: sees bob joined", () => waitForMembership(alice, roomId, bobId, "join"));

  await step("bob: sees alice's device signed by her cross-signing keys after joining (keys/query)", async () => {
    await waitFor(
      async () => {
        const status = await bob.getCrypto().getDeviceVerificationStatus(aliceId, alice.getDeviceId());
        return status && status.signedByOwner;
      },
      "alice's device as cross-signed in bob's key query",
    );
  });

  await step("alice -> bob: keys/claim, Olm to-device room key, Megolm message", async () => {
    await sendText(alice, roomId, OLD_MESSAGE);
    await waitForDecrypted(bob, roomId, OLD_MESSAGE);
  });
  await step("bob -> alice: encrypted reply decrypted", async () => {
    await sendText(bob, roomId, "reply from bob");
    await waitForDecrypted(alice, roomId, "reply from bob");
  });

  await step("alice: room keys uploaded to the backup (room_keys/keys)", async () => {
    const count = await waitFor(
      async () => {
        const n = await backupCount(alice);
        return n >= 2 ? n : 0;
      },
      "both room keys (alice's and bob's session) in alice's backup",
    );
    return count;
  }, (count) => ({ count }));
  alice.stopClient();

  const aliceAgain = await step("alice: second login, a new device", async () =>
    startClient(baseUrl, await login(baseUrl, aliceId, "alice's js phone"), secretStorageKeys),
  );
  await step("second device: the old message is undecryptable before the restore", async () => {
    const old = await waitFor(
      () =>
        aliceAgain
          .getRoom(roomId)
          ?.getLiveTimeline()
          .getEvents()
          .find((ev) => ev.getWireType() === "m.room.encrypted" && ev.getSender() === aliceId),
      "alice's old encrypted message in the second device's initial sync",
    );
    await waitFor(
      () => old.isDecryptionFailure() || old.getContent().body === OLD_MESSAGE,
      "the second device's first attempt to decrypt the old message",
    );
    if (!old.isDecryptionFailure()) {
      throw new Error("the second device decrypted the old message before any restore: the key came from elsewhere");
    }
    return old.decryptionFailureReason;
  }, (reason) => ({ reason }));
  await step("second device: restore room keys from the backup", async () => {
    const crypto = aliceAgain.getCrypto();
    await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
    const check = await crypto.checkKeyBackupAndEnable();
    if (!check || !check.backupInfo) throw new Error("no key backup found on the server");
    const result = await crypto.restoreKeyBackup();
    if (result.total < 2) throw new Error(`restored ${JSON.stringify(result)}: expected at least 2 keys`);
    return result;
  }, (result) => result);
  await step("second device: decrypts the old message", () => waitForDecrypted(aliceAgain, roomId, OLD_MESSAGE));
  aliceAgain.stopClient();
  bob.stopClient();
}

runScenario(main);
