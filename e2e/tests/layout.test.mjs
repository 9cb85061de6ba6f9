// The pages' layout on a phone and a desktop, in a real browser against
// `auth-server demo`: the primary action of each page is on the first screen
// (its box measured against the viewport, without scrolling), 연결 해제 asks
// first and works without JavaScript, and the sign-in-needed page leads to
// the demo's sign-in and back. Run through e2e/run.sh.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DESKTOP,
  env,
  JISOO_ID,
  PHONE,
  resetAndSignIn,
  resetDemo,
  SCOPE,
  screenshot,
  storedScopes,
  useBrowser,
} from '../lib/harness.mjs';

const TIMEOUT = 90_000;
const ITEM_URL = `${env.baseUrl}/passport/gmail`;
const CONFIRM_URL = `${ITEM_URL}/disconnect`;
const CONSENT_URL = `${env.fakeUrl}/o/oauth2/v2/auth`;

const { journey } = useBrowser();

/**
 * At phone and desktop size, from the top of the page, `locator`'s box lies
 * inside the viewport: visible without scrolling. Prints the box (the
 * figures the README quotes) and returns them.
 */
async function onFirstScreen(page, locator, where) {
  const boxes = {};
  for (const [name, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    await page.setViewportSize(size);
    await page.evaluate(() => window.scrollTo(0, 0));
    const box = await locator.boundingBox();
    assert.ok(box, `${where}: the action is shown at ${name} size`);
    const bottom = box.y + box.height;
    console.log(`# fold ${where} ${size.width}x${size.height}: y ${Math.round(box.y)}–${Math.round(bottom)}`);
    assert.ok(box.y >= 0 && bottom <= size.height, `${where} at ${size.width}x${size.height}: y ${box.y}–${bottom} is not inside 0–${size.height}`);
    assert.ok(box.x >= 0 && box.x + box.width <= size.width, `${where}: inside the width`);
    boxes[name] = { top: box.y, bottom };
  }
  await page.setViewportSize(PHONE);
  return boxes;
}

function primary(page) {
  return page.locator('main a.button.primary, main button.button.primary').first();
}

test('fold: Calendar missing, 캘린더 권한 추가 (재인증) is on the first screen', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page);
    const button = page.getByRole('link', { name: /캘린더 권한 추가 \(재인증\)/ });
    assert.match((await button.getAttribute('class')) || '', /\bprimary\b/);
    assert.match(await page.title(), /일부 권한 없음/);
    await onFirstScreen(page, button, 'item (Calendar missing)');
    // 연결 해제 is reachable below, as a link to its confirmation.
    assert.equal(await page.getByRole('link', { name: /연결 해제/ }).getAttribute('href'), '/passport/gmail/disconnect');
  });
});

test('fold: the partial result shows its retry right under the banner', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(CONSENT_URL)),
      page.getByRole('link', { name: /재인증/ }).click(),
    ]);
    await page.getByRole('radio', { name: /jisoo@example\.com/ }).check();
    for (const s of ['calendar', 'calendar.events']) {
      await page.locator(`input[type="checkbox"][value="${SCOPE(s)}"]`).uncheck();
    }
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${ITEM_URL}?`)),
      page.getByRole('button', { name: /계속/ }).click(),
    ]);
    await page.getByRole('status').waitFor();
    assert.match(await page.title(), /일부 권한만 허용되었습니다|일부 권한 없음/);
    const retry = primary(page);
    assert.match(await retry.innerText(), /재인증/);
    const boxes = await onFirstScreen(page, retry, 'partial result');
    const banner = await page.getByRole('status').boundingBox();
    const gap = boxes.phone.top - (banner.y + banner.height);
    console.log(`# fold partial result 375x812: retry ${Math.round(gap)} px under the banner`);
    assert.ok(gap >= 0 && gap < 250, `the retry is right under the banner (${gap} px)`);
  });
});

test('fold: not connected, 연결하기 is on the first screen', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page, { who: '이민호' });
    assert.match(await page.title(), /연결되지 않음/);
    const connect = page.getByRole('link', { name: /연결하기/ });
    assert.match((await connect.getAttribute('class')) || '', /\bprimary\b/);
    await onFirstScreen(page, connect, 'item (not connected)');
    await screenshot(page, 'not-connected');
  });
});

test('연결 해제 asks first: 취소 goes back and changes nothing, then 연결 해제 disconnects', { timeout: TIMEOUT }, async () => {
  await journey({ javaScriptEnabled: false }, async (page) => {
    await resetAndSignIn(page);
    await Promise.all([page.waitForURL(CONFIRM_URL), page.getByRole('link', { name: /연결 해제/ }).click()]);
    assert.match(await page.title(), /연결 해제 확인/);
    await page.getByRole('heading', { level: 1, name: /연결을 해제할까요/ }).waitFor();
    await page.getByText('jisoo@example.com').waitFor();
    await onFirstScreen(page, page.getByRole('button', { name: /연결 해제/ }), 'disconnect confirmation');
    await screenshot(page, 'disconnect-confirm');

    await Promise.all([page.waitForURL(ITEM_URL), page.getByRole('link', { name: /취소/ }).click()]);
    assert.ok(storedScopes(JISOO_ID), '취소 kept the connection');

    await Promise.all([page.waitForURL(CONFIRM_URL), page.getByRole('link', { name: /연결 해제/ }).click()]);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${ITEM_URL}?`)),
      page.getByRole('button', { name: /연결 해제/ }).click(),
    ]);
    await page.getByText('연결되지 않음').first().waitFor();
    assert.equal(storedScopes(JISOO_ID), null, 'the row is gone');
    assert.equal(await page.getByRole('link', { name: /연결 해제/ }).count(), 0);
  });
});

test('signed out: the 401 page leads to the demo sign-in and back to the page asked for', { timeout: TIMEOUT }, async () => {
  const signedOut = (url, status) => status === 401 && url.startsWith(ITEM_URL);
  await journey({ allowStatus: signedOut }, async (page) => {
    // Reset the demo without signing in.
    await resetDemo(page);

    const resp = await page.goto(CONFIRM_URL);
    assert.equal(resp.status(), 401);
    assert.match(await page.title(), /로그인이 필요합니다/);
    const login = page.getByRole('link', { name: /로그인/ });
    await onFirstScreen(page, login, 'sign-in needed');
    await screenshot(page, 'error-signin');
    await Promise.all([page.waitForURL((u) => u.pathname === '/demo'), login.click()]);
    const at = new URL(page.url());
    assert.equal(at.searchParams.get('return_to'), CONFIRM_URL, 'the sign-in is told where to come back to');

    await page.getByRole('radio', { name: /김지수/ }).check();
    await Promise.all([page.waitForURL(CONFIRM_URL), page.getByRole('button', { name: /로그인/ }).click()]);
    await page.getByRole('heading', { level: 1, name: /연결을 해제할까요/ }).waitFor();
  });
});
