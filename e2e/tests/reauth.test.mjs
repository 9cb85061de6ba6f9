// The 재인증 (re-consent) journey of the Gmail Passport, in a real browser
// against `auth-server demo` and its fake Google. Run through e2e/run.sh.
//
// Each journey starts from the demo's reset button and a real sign-in as
// 김지수 (a passport with Gmail only), and fails on any console error, page
// error, failed request or HTTP error the browser sees.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  env,
  insertEvent,
  JISOO_ID,
  permissionRows,
  resetAndSignIn,
  SCOPE,
  screenshot,
  storedRow,
  storedScopes,
  tokenFor,
  useBrowser,
} from '../lib/harness.mjs';

const TIMEOUT = 90_000;
const ITEM_URL = `${env.baseUrl}/passport/gmail`;
const CONSENT_URL = `${env.fakeUrl}/o/oauth2/v2/auth`;
const GMAIL_ONLY = ['gmail.modify', 'gmail.readonly', 'gmail.send', 'userinfo.email', 'userinfo.profile'].map(SCOPE);
const ALL_LABELS = [
  '메일 보내기',
  '메일 읽기',
  '메일 정리 (라벨·보관)',
  '이메일 주소 확인',
  '기본 프로필 확인',
  '캘린더 보기·관리',
  '캘린더 일정 보기·편집',
];
const CALENDAR_LABELS = ['캘린더 보기·관리', '캘린더 일정 보기·편집'];

/** The seed's appointment: 2025-11-24 07:40–12:00 Asia/Seoul. */
const CHECKUP = {
  summary: '검진',
  location: '인천 연수구 갯벌로156',
  start: { dateTime: '2025-11-24T07:40:00+09:00', timeZone: 'Asia/Seoul' },
  end: { dateTime: '2025-11-24T12:00:00+09:00', timeZone: 'Asia/Seoul' },
};

/** One journey per fresh context; fails on anything the browser reported. */
const { journey } = useBrowser();

/** The item page right after sign-in: Gmail only, Calendar missing. */
async function expectGmailOnly(page) {
  assert.equal(page.url(), ITEM_URL);
  await page.getByText('캘린더 권한이 없어 일정을 등록할 수 없습니다').waitFor();
  const rows = await permissionRows(page);
  assert.deepEqual(rows.missing.sort(), [...CALENDAR_LABELS].sort());
  assert.equal(rows.granted.length, 5, `granted rows: ${rows.granted}`);
  assert.deepEqual(storedScopes(), GMAIL_ONLY);
}

/** Press 재인증 on the item page and arrive at the fake Google consent page. */
async function pressReauth(page) {
  const button = page.getByRole('link', { name: /재인증/ });
  assert.match((await button.getAttribute('class')) || '', /\bbutton\b.*\bprimary\b/);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(CONSENT_URL)), button.click()]);
  await page.waitForLoadState('load');
  await page.getByRole('heading', { level: 1 }).waitFor();
}

/**
 * Decide on the consent page: pick `account`, untick the boxes in `untick`
 * (full scope URLs), press 계속 (allow) or 취소 (deny); wait for the item page.
 */
async function decide(page, { account = 'jisoo@example.com', untick = [], allow = true } = {}) {
  await page.getByRole('radio', { name: new RegExp(account.replace('.', '\\.')) }).check();
  const boxes = page.locator('input[type="checkbox"][name="granted"]');
  const count = await boxes.count();
  assert.ok(count >= 2, `consent page shows ${count} permission boxes`);
  for (const box of await boxes.all()) {
    assert.ok(await box.isChecked(), 'every box starts ticked');
    if (untick.includes(await box.getAttribute('value'))) await box.uncheck();
  }
  const button = page.getByRole('button', { name: allow ? /계속/ : /취소/ });
  await Promise.all([page.waitForURL((u) => u.href.startsWith(`${ITEM_URL}?`)), button.click()]);
  await page.waitForLoadState('load');
  return new URL(page.url());
}

async function banner(page) {
  const b = page.getByRole('status');
  await b.waitFor();
  return b.innerText();
}

test('1. Gmail-only user adds Calendar with 재인증 and the skill can book the appointment', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page, { shot: 'demo-signin' });
    await expectGmailOnly(page);
    await screenshot(page, 'item-missing');

    // Before: the skill is refused with a clear, actionable error.
    const refused = await tokenFor(['calendar.events']);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error, 'scope_missing');
    assert.ok(refused.body.reauth_url, 'scope_missing names the re-auth URL');

    await pressReauth(page);
    await screenshot(page, 'consent');
    const landed = await decide(page);
    assert.equal(landed.searchParams.get('passport'), 'gmail');
    assert.equal(landed.searchParams.get('result'), 'upgraded');
    assert.match(await banner(page), /권한이 추가되었습니다/);

    const rows = await permissionRows(page);
    assert.deepEqual(rows.missing, []);
    assert.deepEqual(rows.granted.sort(), [...ALL_LABELS].sort());
    assert.equal(await page.locator('li.missing').count(), 0);
    await screenshot(page, 'upgraded');

    const scopes = storedScopes();
    assert.ok(scopes.includes(SCOPE('calendar')), `stored: ${scopes}`);
    assert.ok(scopes.includes(SCOPE('calendar.events')), `stored: ${scopes}`);
    for (const s of GMAIL_ONLY) assert.ok(scopes.includes(s), `kept ${s}`);

    const token = await tokenFor(['calendar.events']);
    assert.equal(token.status, 200, JSON.stringify(token.body));
    assert.ok(token.body.access_token);
    assert.equal(token.body.email, 'jisoo@example.com');
    assert.ok(token.body.scopes.some((s) => s === 'calendar.events' || s === SCOPE('calendar.events')));

    const created = await insertEvent(token.body.access_token, CHECKUP);
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.summary, '검진');
    assert.equal(created.body.location, '인천 연수구 갯벌로156');
  });
});

test('2. unticking both Calendar boxes gives a partial result that names them, and keeps Gmail', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page);
    await expectGmailOnly(page);
    await pressReauth(page);
    const landed = await decide(page, { untick: [SCOPE('calendar'), SCOPE('calendar.events')] });
    assert.equal(landed.searchParams.get('result'), 'partial');

    const text = await banner(page);
    assert.match(text, /일부 권한만 허용되었습니다/);
    for (const label of CALENDAR_LABELS) assert.ok(text.includes(label), `banner names ${label}:\n${text}`);

    const rows = await permissionRows(page);
    assert.deepEqual(rows.missing.sort(), [...CALENDAR_LABELS].sort());
    assert.equal(rows.granted.length, 5);
    assert.deepEqual(storedScopes(), GMAIL_ONLY, 'nothing granted before was lost');
    await screenshot(page, 'partial');
  });
});

test('3. pressing 취소 on Google changes nothing', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page);
    await expectGmailOnly(page);
    const before = storedRow();
    await pressReauth(page);
    const landed = await decide(page, { allow: false });
    assert.equal(landed.searchParams.get('result'), 'denied');
    assert.match(await banner(page), /아무것도 바뀌지 않았습니다/);
    const rows = await permissionRows(page);
    assert.deepEqual(rows.missing.sort(), [...CALENDAR_LABELS].sort());
    assert.equal(storedRow(), before, 'the stored connection did not change');
    await screenshot(page, 'denied', { desktop: false });
  });
});

test('4. picking the other Google account says the account changed, from which to which', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page);
    await expectGmailOnly(page);
    await pressReauth(page);
    const landed = await decide(page, { account: 'minho@example.com' });
    assert.equal(landed.searchParams.get('result'), 'account_changed');
    const text = await banner(page);
    assert.match(text, /다른 Google 계정으로 바뀌었습니다/);
    assert.ok(text.includes('jisoo@example.com'), `banner names the old account:\n${text}`);
    assert.ok(text.includes('minho@example.com'), `banner names the new account:\n${text}`);
    assert.ok(text.indexOf('jisoo@example.com') < text.indexOf('minho@example.com'), 'from jisoo to minho');
    await page.locator('.facts').getByText('minho@example.com').waitFor();
    await screenshot(page, 'account-changed', { desktop: false });
  });
});

test('5. replaying the callback (back button) lands calmly on the current state and changes nothing', { timeout: TIMEOUT }, async () => {
  let callbackUrl = null;
  const isCallback = (url) => url.startsWith(`${env.baseUrl}/passport/gmail/callback`);
  await journey({}, async (page) => {
    page.on('request', (req) => {
      if (isCallback(req.url())) callbackUrl ??= req.url();
    });
    await resetAndSignIn(page);
    await expectGmailOnly(page);
    await pressReauth(page);
    const landed = await decide(page);
    assert.equal(landed.searchParams.get('result'), 'upgraded');
    assert.ok(callbackUrl, 'the browser went through the callback');
    assert.match(callbackUrl, /[?&]code=/);
    const before = storedRow();

    const resp = await page.goto(callbackUrl);
    assert.equal(resp.status(), 200, 'not an error page');
    assert.equal(new URL(page.url()).searchParams.get('result'), 'already_done');
    assert.match(await banner(page), /이미 처리되었습니다/);
    await screenshot(page, 'replay');
    assert.equal(storedRow(), before, 'the stored connection did not change');
    const rows = await permissionRows(page);
    assert.deepEqual(rows.missing, []);
    assert.equal(rows.granted.length, 7);
  });
});

test('6. 연결 해제 asks first, then disconnects and says so', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page);
    await expectGmailOnly(page);
    await Promise.all([
      page.waitForURL(`${ITEM_URL}/disconnect`),
      page.getByRole('link', { name: /연결 해제/ }).click(),
    ]);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${ITEM_URL}?`)),
      page.getByRole('button', { name: /연결 해제/ }).click(),
    ]);
    await page.waitForLoadState('load');
    assert.equal(new URL(page.url()).searchParams.get('result'), 'disconnected');
    assert.match(await banner(page), /연결을 해제했습니다/);
    await page.getByText('연결되지 않음').first().waitFor();
    assert.equal(await page.getByRole('link', { name: /연결 해제/ }).count(), 0);
    assert.equal(storedScopes(JISOO_ID), null, 'the row is gone');
    const token = await tokenFor(['gmail.send']);
    assert.equal(token.status, 404);
    assert.equal(token.body.error, 'not_connected');
    await screenshot(page, 'disconnected', { desktop: false });
  });
});

test('7. keyboard: 캘린더 권한 추가 (재인증) comes first, focus is visible, and the consent can be finished without a mouse', { timeout: TIMEOUT }, async () => {
  await journey({}, async (page) => {
    await resetAndSignIn(page);
    await expectGmailOnly(page);

    const focused = () =>
      page.evaluate(() => {
        const el = document.activeElement;
        const css = getComputedStyle(el);
        return { text: el.textContent.trim(), tag: el.tagName, outline: css.outlineStyle, width: parseFloat(css.outlineWidth) };
      });
    await page.keyboard.press('Tab');
    let f = await focused();
    assert.match(f.text, /^캘린더 권한 추가 \(재인증\)/, `first Tab stop is 캘린더 권한 추가 (재인증), not ${f.tag} "${f.text}"`);
    assert.ok(f.outline !== 'none' && f.width >= 2, `visible focus ring: ${JSON.stringify(f)}`);
    await page.keyboard.press('Tab');
    f = await focused();
    assert.match(f.text, /^연결 해제/, `then 연결 해제, not ${f.tag} "${f.text}"`);

    // Back to 캘린더 권한 추가 (재인증) and press Enter; on the consent page Tab to 계속 and press Enter.
    await page.keyboard.press('Shift+Tab');
    await Promise.all([page.waitForURL((u) => u.href.startsWith(CONSENT_URL)), page.keyboard.press('Enter')]);
    await page.waitForLoadState('load');
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press('Tab');
      f = await focused();
      if (/^계속/.test(f.text)) break;
    }
    assert.match(f.text, /^계속/, 'Tab reaches 계속');
    assert.ok(f.outline !== 'none' && f.width >= 2, `visible focus ring: ${JSON.stringify(f)}`);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(`${ITEM_URL}?`)), page.keyboard.press('Enter')]);
    assert.equal(new URL(page.url()).searchParams.get('result'), 'upgraded');
    assert.match(await banner(page), /권한이 추가되었습니다/);
  });
});
