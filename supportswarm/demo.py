"""Demo content: a living forum for a newcomer (`supportswarm demo`, `supportswarm serve --demo`).

A few dozen customer questions across several products (cards, transfers, the app, business accounts,
savings, insurance) with answers, votes and accepted answers; a question closed as a duplicate; asks
that an existing answer deflected; two open swarm rooms with transcripts; and a resolved swarm whose
marked message became the question's accepted answer. Everything goes through the domain services, so
the event log, the metrics and the search index see the demo exactly as they would see real use.

Seeding is idempotent: questions carry `demo-...` external ids, swarm messages fixed client_msg_ids,
and deflections are keyed on the asker and draft title, so a second run adds nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import User
from supportswarm.forum import services as forum
from supportswarm.forum.models import Question
from supportswarm.matching import routing
from supportswarm.matching import services as matching
from supportswarm.matching.models import Suggestion
from supportswarm.matching.search import question_text
from supportswarm.resources import Resources
from supportswarm.swarm import services as swarms
from supportswarm.swarm.models import SwarmStatus

PASSWORD = "demo-password"
PEOPLE = [
    ("maria", "customer"), ("kenji", "customer"), ("olu", "customer"), ("priya", "customer"), ("tom", "customer"),
    ("amara", "customer"), ("finn", "customer"),
    ("sofia", "expert"), ("lars", "expert"), ("dana", "staff"), ("raj", "staff"), ("lena", "lead"), ("admin", "admin"),
]

# (asker, tags, title, body, [(helper, answer, votes)], accepted index or None)
QUESTIONS: list[tuple[str, list[str], str, str, list[tuple[str, str, int]], int | None]] = [
    ("maria", ["cards", "delivery"], "My new card still has not arrived after two weeks",
     "I ordered a replacement debit card 15 days ago and nothing has come. Can I track it?",
     [("dana", "Cards ship within 3 working days and arrive in 5-10. In the app open **Cards → Track delivery**. "
               "If it says *delivered* but you have nothing, freeze the card there and order a new one free of "
               "charge.", 4)],
     0),
    ("kenji", ["cards", "payments"], "Card payment declined at a shop even though I have money",
     "My card was declined at the supermarket twice today. The balance is fine. What is going on?",
     [("sofia", "Most declines are the contactless limit: after five contactless payments the card asks for a chip "
                "and PIN payment once. Insert the card and enter the PIN; the counter resets.", 6),
      ("tom", "Happened to me too, it was the shop's terminal.", 0)],
     0),
    ("olu", ["transfers"], "How long does a bank transfer to another country take?",
     "I sent money to my sister in Ghana yesterday. When will it arrive?",
     [("raj", "SEPA transfers arrive the next working day. SWIFT transfers to other countries take 1-4 working days; "
              "the app shows the expected date under **Payments → Sent**.", 3)],
     0),
    ("priya", ["transfers", "fees"], "Why was I charged a fee for a transfer?",
     "I made a transfer and got charged 2.50. I thought transfers were free.",
     [("dana", "Transfers in the same currency are free. Transfers that convert currency carry the exchange fee "
               "shown before you confirm. Over the monthly free allowance a flat fee applies.", 2)],
     0),
    ("tom", ["account", "security"], "I forgot my passcode and cannot log in",
     "The app keeps asking for my passcode and I do not remember it.",
     [("raj", "Tap **Forgot passcode** on the login screen. We send a link to your email; after confirming your "
              "identity with a selfie you can set a new passcode.", 5)],
     0),
    ("maria", ["account", "security"], "Someone made a payment I do not recognise",
     "There is a payment of 49.99 to a shop I have never heard of. What do I do?",
     [("dana", "Freeze the card straight away in **Cards → Freeze**. Then open the payment and tap **Dispute**. "
               "We refund confirmed fraud within 5 working days and send you a new card.", 8)],
     0),
    ("kenji", ["app", "login"], "The app crashes when I open it on Android",
     "Since yesterday's update the app closes right after the splash screen on my Pixel.",
     [("lars", "Clear the app cache (Settings → Apps → our app → Storage → Clear cache). The 8.2.1 update fixed "
               "the crash on Android 14, so update from the Play Store too.", 4)],
     0),
    ("olu", ["top-up"], "My top-up by bank transfer is not showing",
     "I topped up 200 by bank transfer this morning and my balance did not change.",
     [("sofia", "Bank transfer top-ups take up to one working day. Check you used the reference shown in "
                "**Top up → Bank transfer**; without it we cannot match the money to you.", 3)],
     0),
    ("priya", ["cards", "atm"], "The ATM did not give me cash but my account was charged",
     "I tried to withdraw 100 and the machine gave nothing, but the money left my account.",
     [("raj", "The ATM's bank usually reverses this within 3 working days by itself. If not, open the "
              "withdrawal in the app and tap **Report a problem**; we claim it back for you.", 5)],
     0),
    ("tom", ["billing", "subscription"], "How do I cancel my premium plan?",
     "I want to go back to the free plan. Where is the cancel button?",
     [("dana", "Open **Profile → Plan → Change plan** and choose Standard. The premium features stay until the end "
               "of the billing period; there is no cancellation fee.", 2)],
     0),
    ("maria", ["cards", "virtual-card"], "Can I get a virtual card for online shopping?",
     "I would like a separate card number for online purchases.",
     [("lars", "Yes: **Cards → Add card → Virtual**. It is created instantly and works online and in Apple/Google "
               "Pay. You can delete it and make a new number at any time.", 4)],
     0),
    ("kenji", ["account", "verification"], "Why is my identity verification taking so long?",
     "I uploaded my passport three days ago and the app still says verification pending.",
     [("raj", "Most checks finish in minutes; a few need a manual review that can take up to 3 working days. "
              "Make sure the photo shows all four corners of the document without glare.", 2)],
     0),
    ("olu", ["exchange", "fees"], "What exchange rate do you use for card payments abroad?",
     "I am going to Japan. Will I get a fair rate when paying by card?",
     [("sofia", "Card payments use the interbank rate on weekdays. At weekends a small markup applies because "
                "markets are closed. Paying in the local currency (JPY) always gives the better rate.", 5)],
     0),
    ("priya", ["transfers"], "Transfer is stuck on pending for two days",
     "A payment to my landlord shows 'pending' since Monday. He has not received it.",
     [("dana", "Pending beyond one working day usually means a compliance check. Reply to the message in the app's "
               "inbox with the purpose of the payment; the transfer is released once checked.", 3)],
     None),
    ("tom", ["cards", "pin"], "How can I see my card PIN?",
     "I forgot the PIN of my physical card.",
     [("raj", "Open **Cards → (your card) → Show PIN** and confirm with your passcode or biometrics.", 6)],
     0),
    ("maria", ["app", "notifications"], "I no longer get payment notifications",
     "Push notifications for payments stopped working on my iPhone.",
     [("lars", "Check iOS Settings → Notifications → our app is allowed, then in the app **Profile → "
               "Notifications** toggle payments off and on again to re-register the device.", 1)],
     None),
    ("kenji", ["account"], "How do I change my registered address?",
     "I moved flats. Where can I update the address?", [], None),
    ("olu", ["cards", "payments"], "Apple Pay says the card cannot be added",
     "When I try to add my card to Apple Pay I get 'Card not supported'.", [], None),
    ("priya", ["billing"], "I was charged twice for my monthly plan",
     "Two charges of 7.99 appeared on the same day for my premium plan.",
     [("dana", "Sorry about that. One of the two is a pre-authorisation that drops off within 3 days. If both "
               "are still there after that, reply here and we refund the duplicate.", 2)],
     None),
    ("tom", ["transfers", "limits"], "What is the maximum I can send in one transfer?",
     "I need to send 20,000 for a car purchase.", [], None),

    # --- business accounts ---
    ("amara", ["business", "team"], "How do I give my accountant access to the business account?",
     "Our accountant needs to see transactions and download statements, but must not be able to pay anyone.",
     [("raj", "Open **Team → Invite member**, enter their email and choose the **Accountant** role. Accountants "
              "can see every transaction, export statements and receipts, and cannot move money or issue cards.", 5)],
     0),
    ("amara", ["business", "cards"], "Can I set spending limits on employee cards?",
     "I am giving cards to three employees and want to cap what each can spend per month.",
     [("dana", "Yes. **Team → (employee) → Cards → Limits** lets you set a daily and a monthly limit and block "
               "categories such as cash withdrawals. Changes apply immediately.", 4),
      ("lars", "Tip: turn on *Receipt required* in the same screen so expenses come with a photo.", 2)],
     0),
    ("finn", ["business", "invoices"], "The invoice PDF shows our old VAT number",
     "We changed VAT number last month but new invoices still print the old one.",
     [("raj", "Invoices take the company details at the moment they are created. Update **Settings → Company "
              "details → VAT number**, then open the invoice and choose **Regenerate PDF**; sent invoices keep "
              "the old number by law, so issue a credit note if one went out wrong.", 3)],
     0),
    ("finn", ["business", "integrations"], "Xero stopped importing our transactions",
     "The Xero integration worked for months, but nothing new has arrived since Friday.",
     [("lars", "Xero connections expire after 90 days unless refreshed. Go to **Integrations → Xero → Reconnect** "
               "and sign in to Xero again; the missing days are imported within an hour.", 6)],
     0),
    ("amara", ["business", "onboarding"], "Our business account application was rejected",
     "We are a two-person design studio. The application was declined without a reason. Can we appeal?",
     [], None),
    # --- savings ---
    ("priya", ["savings", "interest"], "When is interest paid on my savings vault?",
     "I moved 5,000 into a vault last week and see no interest yet.",
     [("sofia", "Interest accrues daily and is paid on the first day of each month for the month before. "
                "**Savings → (vault) → Interest** shows what has accrued so far.", 7)],
     0),
    ("tom", ["savings"], "Can I take money out of a fixed-term savings vault early?",
     "I locked 2,000 for 12 months but now I need part of it.",
     [("dana", "Fixed-term vaults cannot be opened before the end date; that is what pays the higher rate. "
               "For money you may need, use an instant-access vault: lower rate, withdraw any time.", 3)],
     0),
    ("kenji", ["savings", "round-ups"], "Round-ups stopped moving my spare change",
     "Card payments are rounded up in the app but the vault balance has not grown for a week.",
     [("lars", "Round-ups are collected once a day, and only while the main balance stays above the amount. "
               "Check **Savings → Round-ups → Source account**; after a card replacement it can be unset.", 4)],
     0),
    ("olu", ["savings", "interest"], "The savings rate changed without any notice",
     "My vault was at 3.1% and is now 2.8%. I did not get an email.",
     [("raj", "Variable rates follow the central bank rate; we send a notice in the app inbox two weeks "
              "before a cut. Check **Profile → Inbox → Rate changes**.", 1)],
     None),
    # --- insurance ---
    ("maria", ["insurance", "travel"], "Does the travel insurance cover a cancelled flight?",
     "My flight to Lisbon was cancelled and I had to book a hotel for a night.",
     [("dana", "With Premium and Metal plans, yes: delays over 4 hours and cancellations cover meals and a hotel "
               "up to 300. Claim in **Insurance → Make a claim** with the airline's cancellation email and "
               "your receipts.", 5)],
     0),
    ("finn", ["insurance", "phone"], "How do I claim for a cracked phone screen?",
     "I dropped my phone and the screen is cracked. I have the Metal plan with phone insurance.",
     [("sofia", "Open **Insurance → Phone → Make a claim**, add photos of the damage and the repair quote. "
                "The excess is 50; approved claims are paid within 5 working days.", 2)],
     None),
    # --- app and account ---
    ("priya", ["app", "login"], "Face ID no longer works to log in",
     "Since switching phones the app only accepts my passcode.",
     [("lars", "Biometrics are tied to the device. On the new phone open **Profile → Security → Face ID** and "
               "turn it on; you confirm once with your passcode.", 3)],
     0),
    ("tom", ["account", "joint"], "Can I open a joint account with my partner?",
     "We want one account for rent and groceries.",
     [("raj", "Yes: **Accounts → Add account → Joint**, then invite your partner by phone number. Both of you "
              "get cards, and either can see and move the money.", 4)],
     0),
    ("kenji", ["exchange", "accounts"], "Can I hold money in several currencies?",
     "I get paid in USD and spend in EUR. Can I keep both?",
     [("sofia", "Yes. **Accounts → Add currency** opens a balance in 30+ currencies. Exchange between them in "
                "the app; card payments take the matching balance first.", 6)],
     0),
    ("olu", ["cards", "atm"], "What are the ATM withdrawal limits abroad?",
     "Travelling to Mexico next month: how much cash can I take out?",
     [("dana", "Up to 1,000 a day. Withdrawals up to 200 a month are free on Standard (800 on Premium); "
               "after that 2% applies. The ATM's own fee, if any, is shown on its screen.", 5)],
     0),
    ("maria", ["transfers", "scheduled"], "How do I cancel a scheduled payment?",
     "I set up a monthly payment to my old gym and need to stop it.",
     [("raj", "**Payments → Scheduled**, open the payment and tap **Cancel**. It stops from the next date; a "
              "payment already sent today cannot be recalled.", 2)],
     0),
]

# (asker, tags, title, body, original's index in QUESTIONS): closed as a duplicate by staff.
DUPLICATES: list[tuple[str, list[str], str, str, int]] = [
    ("olu", ["cards", "pin"], "Where do I find the PIN of my new card?",
     "The letter with the card had no PIN in it.", 14),
]

# Asks that an existing answer solved before anything was posted (deflections): (asker, title, body).
DEFLECTIONS: list[tuple[str, str, str]] = [
    ("tom", "My card keeps getting declined in shops but my balance is fine",
     "Two shops refused my card today although there is enough money on the account."),
    ("priya", "How many days does an international bank transfer take to arrive?",
     "I sent money abroad on Monday and wonder when it gets there."),
]

# (key, asker, tags, title, body, reason, [(speaker, message)], index of the solution message or None)
SWARMS: list[tuple[str, str, list[str], str, str, str, list[tuple[str, str]], int | None]] = [
    ("demo-swarm-0", "olu", ["cards", "outage"], "Card payments declined everywhere since this morning",
     "Every card payment fails with 'declined': supermarket, petrol station and online. The app shows my "
     "balance as normal.", "urgent",
     [("olu", "Hi, I have tried three shops now and every payment is declined."),
      ("dana", "Thanks Olu, I'm on it. Are the declines contactless, chip and PIN, or both?"),
      ("olu", "Both. Online payments too."),
      ("sofia", "Same for two friends of mine this morning, all with cards issued last month."),
      ("dana", "That matches a batch of new cards we are checking with the card processor right now. "
               "Could you tell me the last four digits of your card?"),
      ("olu", "It ends in 4417.")],
     None),
    ("demo-swarm-1", "finn", ["business", "invoices"], "Invoices stuck in 'sending' for a whole day",
     "We sent five invoices yesterday; they all still say 'sending' and our customers have not received them.",
     "no_match",
     [("finn", "All five were made with the new invoice template we set up on Monday."),
      ("raj", "Thanks Finn. Do invoices from the old template still go out?"),
      ("finn", "Just tried one: yes, it went out straight away."),
      ("lars", "Does the new template have a big logo? Mine got stuck the same way with a 12 MB PNG.")],
     None),
    ("demo-swarm-2", "maria", ["savings", "app"], "Savings vault shows a zero balance after the app update",
     "After updating the app this morning my holiday vault shows 0.00. I had about 1,200 in it!", "no_match",
     [("maria", "I'm worried: the vault says 0.00 and its history is empty."),
      ("lars", "Your money is safe, this is a display problem in app version 8.3.0. Does the web app show "
               "the right balance?"),
      ("maria", "Yes! The web app shows 1,204.50."),
      ("raj", "Confirmed: it affects vaults opened before 2023. The fix ships in 8.3.1 today."),
      ("lars", "Until 8.3.1 arrives: log out of the app and back in. That reloads your vaults from the server "
               "and shows the right balance. Your money was never touched."),
      ("maria", "Logging out and in worked, the balance is back. Thank you both!")],
     4),
]


async def _users() -> dict[str, User]:
    people: dict[str, User] = {}
    for name, role in PEOPLE:
        existing = await User.filter(username=name).first()
        people[name] = existing or await accounts.register(name, PASSWORD, role=role)
    return people


async def _answer(people: dict[str, User], question: Question, answers: list[tuple[str, str, int]],
                  accepted: int | None, at: datetime) -> None:
    for i, (helper, text, votes) in enumerate(answers):
        answer = await forum.post_answer(people[helper], question.id, text,
                                         created_at=at + timedelta(minutes=7 + 23 * i))
        voters = [p for p in people.values() if p.id not in (answer.author_id, question.author_id)]
        for voter in voters[:votes]:
            await forum.vote(voter, value=1, answer_id=answer.id)
        if accepted == i:
            await forum.accept_answer(people[question_asker(question, people)], answer.id)


def question_asker(question: Question, people: dict[str, User]) -> str:
    return next(name for name, user in people.items() if user.id == question.author_id)


async def _seed_questions(res: Resources, people: dict[str, User]) -> int:
    start = datetime.now(UTC) - timedelta(days=len(QUESTIONS) + 1)
    added = 0
    for n, (asker, tags, title, body, answers, accepted) in enumerate(QUESTIONS):
        external_id = f"demo-{n}"
        if await Question.filter(external_id=external_id).exists():
            continue
        at = start + timedelta(days=n, hours=n % 7)
        question = await forum.create_question(people[asker], title, body, tags, jobs=res.jobs,
                                               external_id=external_id, created_at=at)
        if n % 3 == 0:  # some questions are upvoted too: "me too" is how customers say it matters
            for voter in [p for p in people.values() if p.id != question.author_id][: 1 + n % 4]:
                await forum.vote(voter, value=1, question_id=question.id)
        await _answer(people, question, answers, accepted, at)
        added += 1
    return added


async def _seed_duplicates(res: Resources, people: dict[str, User]) -> int:
    added = 0
    for n, (asker, tags, title, body, original) in enumerate(DUPLICATES):
        external_id = f"demo-dup-{n}"
        if await Question.filter(external_id=external_id).exists():
            continue
        question = await forum.create_question(people[asker], title, body, tags, jobs=res.jobs,
                                               external_id=external_id,
                                               created_at=datetime.now(UTC) - timedelta(days=2))
        target = await Question.get(external_id=f"demo-{original}")
        await forum.mark_duplicate(people["dana"], question.id, target.id)
        added += 1
    return added


async def _seed_deflections(res: Resources, people: dict[str, User]) -> int:
    """Asks that a confident match answered: shown, then accepted ("this solved my problem"). Only when the
    matcher really is confident (it needs the questions embedded), so the demo never posts these drafts."""
    policy = routing.AskPolicy(answer_threshold=res.settings.answer_threshold,
                               urgent_tags=res.settings.swarm_urgent_tags)
    done = 0
    for asker, title, body in DEFLECTIONS:
        user = people[asker]
        if await Suggestion.filter(asker_id=user.id, draft_title=title).exists():
            continue
        similar = await matching.find_similar(question_text(title, body), limit=1, embedder=res.embedder,
                                              answer_threshold=policy.answer_threshold)
        if similar.decision != "answer":
            continue
        routed = await routing.ask_question(user, routing.check_draft(title, body, []), policy=policy,
                                            embedder=res.embedder, broker=res.broker, jobs=res.jobs)
        if routed.suggestion is not None:
            await routing.accept_suggestion(routed.suggestion.id, user)
            done += 1
    return done


async def _seed_swarm(res: Resources, people: dict[str, User], n: int) -> bool:
    key, asker, tags, title, body, reason, messages, solution = SWARMS[n]
    question = await Question.filter(external_id=key).first()
    if question is None:
        # Asked now: live questions come first on the home page (ordered by last activity).
        question = await forum.create_question(people[asker], title, body, tags, jobs=res.jobs, external_id=key)
    swarm = await swarms.open_swarm(question.id, opened_by=people[asker], reason=reason, broker=res.broker,
                                    jobs=res.jobs)
    if swarm.status != SwarmStatus.OPEN:
        return False
    swarm = await swarms.get_swarm(swarm.id)
    expert_rep = res.settings.expert_reputation
    for speaker in dict.fromkeys(name for name, _text in messages):
        await swarms.join_swarm(swarm, people[speaker], expert_reputation=expert_rep)
    seqs = []
    for i, (speaker, text) in enumerate(messages):
        posted = await swarms.post_message(swarm.id, people[speaker], text, f"{key}-{i}", broker=res.broker,
                                           jobs=res.jobs)
        seqs.append(int(posted.frame["seq"]))
    if solution is not None:
        await swarms.resolve_swarm(swarm.id, people[asker], seqs[solution], broker=res.broker,
                                   expert_reputation=expert_rep, jobs=res.jobs)
    return True


async def seed_demo(res: Resources) -> int:
    """Adds the demo content that is missing; returns how many questions it added."""
    people = await _users()
    added = await _seed_questions(res, people)
    added += await _seed_duplicates(res, people)
    for n in range(len(SWARMS)):
        added += await Question.filter(external_id=SWARMS[n][0]).count() == 0
        await _seed_swarm(res, people, n)
    await res.jobs.drain()  # in-process mode: the new questions are embedded before matching against them
    await _seed_deflections(res, people)
    return added
