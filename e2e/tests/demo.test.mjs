// The demo's "what the assistant did" panel (/demo/calendar), in a real
// browser against `auth-server demo`: the skill's button is refused with
// scope_missing (and a 재인증 link) before 재인증, and creates the 검진
// appointment after it, which the panel then lists; then Google revokes the
// grant (a RISC signal) and the token API refuses at once. Run through e2e/run.sh.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { env, PHONE, resetAndSignIn, screenshot, tokenFor, useBrowser } from '../lib/harness.mjs';

const TIMEOUT = 90_000;
const PANEL_URL = `${env.baseUrl}/demo/calendar`;
const ITEM_URL = `${env.baseUrl}/passport/gmail`;
const CONSENT_URL = `${env.fakeUrl}/o/oauth2/v2/auth`;

const { open } = useBrowser();

/** Press the skill's button; the answer's banner text. */
async function playSkill(page) {
  const button = page.getByRole('button', { name: /검진 일정 등록하기/ });
  await Promise.all([page.waitForURL(`${PANEL_URL}/play`), button.click()]);
  await page.waitForLoadState('load');
  const banner = page.getByRole('status');
  await banner.waitFor();
  return banner.innerText();
}

/** The events the panel lists, as text. */
async function listedEvents(page) {
  return page.locator('ul.events > li').allInnerTexts();
}

test('8. the assistant panel: scope_missing before 재인증, the 검진 event after, reauth_required once Google revokes', { timeout: TIMEOUT }, async () => {
  const session = await open();
  const { page } = session;
  try {
    await resetAndSignIn(page);
    await page.goto(PANEL_URL);
    await page.getByRole('heading', { level: 1, name: /비서가 한 일/ }).waitFor();
    assert.deepEqual(await listedEvents(page), [], 'the fake Calendar starts empty');
    assert.match(await page.locator('main').innerText(), /아직 없습니다/);

    // Before 재인증: the token API's precise refusal, and the way forward.
    const refused = await playSkill(page);
    assert.match(refused, /scope_missing/);
    assert.match(refused, /calendar\.events/);
    assert.deepEqual(await listedEvents(page), [], 'nothing was created');
    const reauth = page.getByRole('link', { name: /재인증하기/ });
    assert.equal(await reauth.getAttribute('href'), `${env.baseUrl}/passport/gmail/connect`);
    const box = await reauth.boundingBox();
    assert.ok(box && box.y + box.height <= PHONE.height, `재인증 is above the fold on a phone: ${JSON.stringify(box)}`);
    await screenshot(page, 'assistant-refused');

    // 재인증 from the panel's link: keep every box, 계속.
    await Promise.all([page.waitForURL((u) => u.href.startsWith(CONSENT_URL)), reauth.click()]);
    await page.getByRole('radio', { name: /jisoo@example\.com/ }).check();
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(ITEM_URL)),
      page.getByRole('button', { name: /계속/ }).click(),
    ]);
    await page.waitForLoadState('load');

    // After: the skill gets its token and books the appointment; the panel lists it.
    await page.goto(PANEL_URL);
    const created = await playSkill(page);
    assert.match(created, /검진 일정을 등록했습니다/);
    assert.doesNotMatch(created, /scope_missing/);
    const events = await listedEvents(page);
    assert.equal(events.length, 1, `listed: ${events}`);
    assert.match(events[0], /검진/);
    assert.match(events[0], /2025-11-24 07:40–12:00 KST/);
    assert.match(events[0], /인천 연수구 갯벌로156/);
    assert.match(events[0], /jisoo@example\.com/);
    await screenshot(page, 'assistant-created');

    // The panel on its own (GET) shows what the fake Calendar holds.
    await page.goto(PANEL_URL);
    assert.equal((await listedEvents(page)).length, 1);
    // And the token API agrees with what the panel showed.
    const token = await tokenFor(['calendar.events']);
    assert.equal(token.status, 200, JSON.stringify(token.body));

    // Google revokes the grant (RISC): the panel shows the signal arriving
    // and the token API refusing at once, with the way forward.
    const revoke = page.getByRole('button', { name: /Google에서 접근 취소/ });
    await Promise.all([page.waitForURL(`${PANEL_URL}/revoke`), revoke.click()]);
    await page.waitForLoadState('load');
    const revoked = await page.getByRole('status').innerText();
    assert.match(revoked, /202 — tokens-revoked for jisoo@example\.com/);
    assert.match(revoked, /409 — reauth_required/);
    assert.equal(
      await page.getByRole('link', { name: /재인증하기/ }).getAttribute('href'),
      `${env.baseUrl}/passport/gmail/connect`,
    );
    await screenshot(page, 'assistant-revoked');
    const refusedNow = await tokenFor(['calendar.events']);
    assert.equal(refusedNow.status, 409, JSON.stringify(refusedNow.body));
    assert.equal(refusedNow.body.cause, 'tokens_revoked', JSON.stringify(refusedNow.body));
    session.assertClean('end of journey');
  } finally {
    await session.close();
  }
});
