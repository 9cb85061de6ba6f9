// Banners from the truth (issue 15, items 3–5), in a real browser against
// `auth-server demo`, at phone (375 × 812) and desktop (1280 × 800) size:
// a typed or reloaded `?result=` shows only the current state; back + 계속
// after a success lands calmly on the current state; a second tab that
// changed nothing says so; the success banner names what was added.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkPage,
  DESKTOP,
  env,
  permissionRows,
  PHONE,
  resetAndSignIn,
  screenshot,
  storedRow,
  useBrowser,
} from '../lib/harness.mjs';

const TIMEOUT = 90_000;
const ITEM_URL = `${env.baseUrl}/passport/gmail`;
const CONSENT_URL = `${env.fakeUrl}/o/oauth2/v2/auth`;
const ADDED = '캘린더 보기·관리, 캘린더 일정 보기·편집 권한이 추가되었습니다';

const browser = useBrowser();
const journey = (size, body) => browser.journey({ size }, body);

async function pressReauth(page) {
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(CONSENT_URL)),
    page.getByRole('link', { name: /재인증/ }).click(),
  ]);
  await page.waitForLoadState('load');
}

/** Press 계속 on the consent page (every box ticked); wait for the item page. */
async function allow(page) {
  await page.getByRole('radio', { name: /jisoo@example\.com/ }).check();
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(`${ITEM_URL}?`)),
    page.getByRole('button', { name: /계속/ }).click(),
  ]);
  await page.waitForLoadState('load');
  return new URL(page.url());
}

/** The banner's text, and that it is on screen without scrolling. */
async function bannerOnScreen(page, size) {
  const b = page.getByRole('status');
  await b.waitFor();
  const box = await b.boundingBox();
  assert.ok(box && box.y >= 0 && box.y < size.height, `banner starts on screen: ${JSON.stringify(box)}`);
  return b.innerText();
}

for (const [name, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
  test(`truth 1 (${name}): a typed ?result= shows only the current state`, { timeout: TIMEOUT }, async () => {
    await journey(size, async (page) => {
      await resetAndSignIn(page);
      for (const q of ['result=upgraded', 'result=connected', 'result=disconnected', 'result=already_done']) {
        await page.goto(`${ITEM_URL}?passport=gmail&${q}`);
        assert.equal(await page.getByRole('status').count(), 0, `${q}: no banner`);
        const rows = await permissionRows(page);
        assert.equal(rows.missing.length, 2, `${q}: Calendar is still missing`);
        await checkPage(page, `typed ${q} at ${name}`);
      }
    });
  });

  test(`truth 2 (${name}): the success banner names what was added, once`, { timeout: TIMEOUT }, async () => {
    await journey(size, async (page) => {
      await resetAndSignIn(page);
      await pressReauth(page);
      const landed = await allow(page);
      assert.equal(landed.searchParams.get('result'), 'upgraded');
      const text = await bannerOnScreen(page, size);
      assert.ok(text.includes(ADDED), `names the added permissions:\n${text}`);
      assert.ok(!text.includes('메일 보내기'), `only what was added:\n${text}`);
      await checkPage(page, `upgraded at ${name}`);
      await page.reload();
      assert.equal(await page.getByRole('status').count(), 0, 'a reload repeats nothing');
      assert.equal((await permissionRows(page)).missing.length, 0);
    });
  });

  test(`truth 3 (${name}): back, then 계속 again after a success, lands calmly on the current state`, { timeout: TIMEOUT }, async () => {
    await journey(size, async (page) => {
      await resetAndSignIn(page);
      await pressReauth(page);
      const landed = await allow(page);
      assert.equal(landed.searchParams.get('result'), 'upgraded');
      const before = storedRow();
      // The browser's back button: Google's consent page again.
      await page.goBack();
      await page.waitForURL((u) => u.href.startsWith(CONSENT_URL));
      await page.waitForLoadState('load');
      const again = await allow(page);
      assert.equal(again.searchParams.get('result'), 'already_done');
      const text = await bannerOnScreen(page, size);
      assert.match(text, /이미 처리되었습니다/);
      assert.doesNotMatch(text, /오류/);
      assert.equal((await permissionRows(page)).missing.length, 0, 'the current state: all granted');
      assert.equal(storedRow(), before, 'nothing applied twice');
      await checkPage(page, `already done at ${name}`);
      if (name === 'phone') await screenshot(page, 'replay');
    });
  });

  test(`truth 4 (${name}): a second tab whose consent changed nothing says so`, { timeout: TIMEOUT }, async () => {
    await journey(size, async (page, session) => {
      await resetAndSignIn(page);
      const second = await session.context.newPage();
      await second.setViewportSize(size);
      await second.goto(ITEM_URL);
      await pressReauth(page);
      await pressReauth(second);
      assert.equal((await allow(page)).searchParams.get('result'), 'upgraded');
      assert.ok((await bannerOnScreen(page, size)).includes(ADDED));
      assert.equal((await allow(second)).searchParams.get('result'), 'unchanged');
      const text = await bannerOnScreen(second, size);
      assert.match(text, /바뀐 것이 없습니다/);
      assert.match(text, /이미 모든 권한이 허용되어 있어서/);
      assert.doesNotMatch(text, /연결되었습니다|권한이 추가되었습니다/);
      await checkPage(second, `unchanged at ${name}`);
      if (name === 'phone') await screenshot(second, 'unchanged', { desktop: false });
    });
  });
}
