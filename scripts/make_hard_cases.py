#!/usr/bin/env python3
"""Write tests/data/vader/hard_cases.txt, the hand-made hard-case corpus for the VADER port.

The Rust crate in this repository is a faithful port of PyPI ``vaderSentiment==3.3.2``.
This script holds a few hundred hand-written sentences, grouped by the rule of the
reference they exercise (negation, the "no" rule, "least", "but", boosters, special
idioms, ALL-CAPS emphasis, punctuation emphasis, emoticons, emoji, Unicode, whitespace,
float edge cases, ...), plus a few position grids and some very long generated lines.
It writes one case per line (UTF-8, LF, one final newline). The reference scores are
then made with ``scripts/regen-reference.sh``, which runs this script first.

Rules for the output, checked below before anything is written:
  * no line holds "\\n", "\\r" or U+2029; U+0085, U+2028, \\x0b, \\x0c and \\x1c-\\x1f
    appear only inside a handful of lines (never first or last), on purpose: Python's
    str.split() treats them as whitespace, Rust's split_whitespace() does not know
    \\x1c-\\x1f;
  * the first line does not start with U+FEFF (the reference reader drops a BOM);
  * no line looks like the ground-truth TSV shape ``id<TAB>number<TAB>text``;
  * non-blank lines are unique.

The script is deterministic: no randomness, no dependence on the environment.

Usage:  python3 scripts/make_hard_cases.py [--stats] [OUTPUT]
        (default OUTPUT: tests/data/vader/hard_cases.txt next to this script's repo)
"""

import os
import re
import sys

# ---------------------------------------------------------------------------
# Hand-written cases, by category.  Invisible or unusual characters are written
# with \u / \x escapes so they can be read here.
# ---------------------------------------------------------------------------

NEGATION = [
    "The soup was not good.",
    "The soup was not bad.",
    "The soup wasn't good.",
    "The soup wasnt good.",
    "The soup was NOT good at all.",
    "It isn't good.",
    "It isn\u2019t good.",                 # curly apostrophe: NOT a negation
    "It isn\u2018t good, it isn\u02bct bad.",  # other apostrophe look-alikes
    "It is n't good.",                     # "n't" as its own token
    "n't good",
    "I don't hate it.",
    "I dont hate it",
    "I DON'T hate it",
    "I never liked the sequel.",
    "She has never been happy here.",
    "Never happy, never sad.",
    "He left without a smile.",
    "without love",
    "Neither good nor bad.",
    "nor happy",
    "The coach rarely smiles.",
    "My cat seldom complains.",
    "Despite the great cast, the film drags.",
    "despite good reviews",
    "uh-uh, good try",
    "uhuh good",
    "nope good",
    "Nope, it is great.",                  # negation three tokens back
    "not very good",
    "not a good idea",
    "not the most exciting trip",
    "it is not really that bad",           # negation four tokens back: ignored
    "not not good",
    "never not never good",
    "I can't say it was not terrible.",
    "ain't nothing wrong with that",
    "nothing good happens after midnight",
    "There is nowhere nice to eat.",
    "None of it was enjoyable.",
    "cannot complain",
    "we won't win",
    "I wouldn't recommend this blender",
    "couldn\u2019t be happier",
    "couldn't be happier",
    "hadn't laughed so hard in years",
    "It did not disappoint.",
    "didnt love it, didnt hate it",
    "not bad good",                        # "bad" (a lexicon word) sits between
    "Not bad, not bad at all!",
    "NOT good",
    "not GOOD",
    "you couldn'tve been more wrong, it was good",
    "it wasn't. good",
    "not no good",
]

NO_RULE = [
    "no",
    "No",
    "NO",
    "No.",
    "no good",
    "No good.",
    "NO good",
    "no GOOD",
    "no, good",
    "no no",
    "No no no",
    "no no no no no",
    "No, no, no!",
    "NO NO NO",
    "no good or bad",
    "no good nor bad",
    "no fun or games",
    "no love nor hate",
    "no bad, or good",
    "there is no problem",
    "no problems at all",
    "I have no complaints",
    "no doubt about it",
    "no doubt, amazing",
    "no way this is good",
    "no really great",
    "no very good",
    "I said no",
    "I said no.",
    "yes or no",
    "no yes",
    "no ok",
    "no lol",
    "no :)",
    "No :( at all",
    "no thanks",
    "no harm, no foul",
    "no pain no gain",
    "Oh no!!",
    "no, no, it was great",
    "good no",
    "no bad good",
    "it was VERY NO good",
]

NEVER_SO_THIS = [
    "never so good",
    "never this good",
    "Never so happy.",
    "It was never so bad",
    "I have never been so happy",
    "It has never been this good!",
    "never ever this good",
    "never this bad",
    "so good",
    "it so good",
    "it is so good",                       # "so" right before, three earlier tokens: x1.25
    "it is so bad",
    "the pie is this good",
    "I can't believe it is this good",
    "really so good",
    "so so good",
    "this this good",
    "This is so very good",
    "it is SO good",
    "It is THIS good",
    "this good",
    "all this love",
    "so sad",
    "I am so sad",
    "I am so, so sad",
    "we were all so sad",
    "good good so good",                   # word three back is in the lexicon
    "without doubt good",
    "Without doubt, a great film.",
    "without a doubt great",
    "Without any doubt, great.",
    "without doubt",
    "without a doubt it is bad",
    "the plot was so this good",
    "never so very good",
    "without doubt a good choice",
    "That is so kind of you.",             # "kind" before "of" is dropped
    "You are kind.",
]

LEAST = [
    "least good",
    "Least good",
    "the least good",
    "at least good",
    "at least it is good",
    "At least it isn't bad.",
    "very least good",
    "the very least good",
    "at the very least, good",
    "It is the least bad option.",
    "least bad",
    "least",
    "at least",
    "good least",
    "the LEAST good",
    "least, good",
    "at least, good",
    "not least good",
    "least least good",
    "at least least good",
    "least of all good",
    "the least terrible thing",
    "at least 5 good ones",
    "The least funny joke, at least.",
    "at least the least bad",
    "AT LEAST good",
    "At Least good",
]

BUT = [
    "good but bad",
    "bad but good",
    "good good but good",
    "bad but bad bad",
    "good but good",
    "but good",
    "good but",
    "but",
    "But good",
    "Good. But bad.",
    "BUT it was great",
    "good but bad but good",
    "good, but bad, but good",
    "great but ok",
    "kind but ok",                         # 2.4*0.5 == 1.2: list.index picks the wrong item
    "brave but ok",
    "brave ok but fine",
    "but ok nice",                         # 1.2*1.5 == 1.8: same effect after "but"
    "love but ok",
    "nice but nice",
    "but but good",
    "good but but",
    "fine but meh",
    "I liked it, but the ending was awful.",
    "The plot was weak, but the acting was superb.",
    "It was cheap but it broke.",
    "but honestly it was good good good",
    "good bad but bad good",
    "butt good",
    "but. good",
    "good but, bad",
    "bad but ugly but good",
    "good but great great",
    "The service was good but slow, but the pasta was good.",
    "Good food but BAD service",
    "good but BUT good",
    "kind ok but kind ok",
]

BOOSTERS = [
    "very good",
    "very bad",
    "VERY good",
    "VERY bad",
    "extremely good",
    "extremely bad",
    "really really good",
    "very very very good",
    "very, very good",
    "kind of good",
    "kind of bad",
    "Kind of good",
    "KIND OF good",
    "It was kind of good",
    "It was kind of bad",                  # "kind of" adds -0.293 without a sign flip
    "I like kind of good",
    "kinda good",
    "kinda bad",
    "It was KINDA bad",
    "sort of good",
    "sort of bad",
    "the room was sort of nice",
    "sorta good",
    "sort-of good",
    "kind-of good",
    "kindof good",
    "it was just enough fun",
    "just enough fun",
    "barely good",
    "hardly bad",
    "somewhat good",
    "slightly bad",
    "SLIGHTLY good",                       # dampener in caps turns into a booster
    "a little good",
    "less good",
    "more good",
    "most bad",
    "almost perfect",
    "fucking awesome",
    "FUCKING awesome",
    "friggin great",
    "uber cool",
    "hella good",
    "so fucking good",
    "incredibly bad",
    "totally not good",
    "very not good",
    "extremely very good",
    "This is VERY good",
    "this is EXTREMELY bad",
    "The pasta was REALLY good but the service was SLIGHTLY bad",
    "kind of",
    "it is kind of",
    "some kind of bad idea",
]

IDIOMS_HAND = [
    "it is the shit",
    "this album is the shit!",
    "that party is the bomb",
    "he is bad ass",
    "he is a bad ass",
    "he is a badass",
    "it is not the shit",                  # idiom value replaces the negated one
    "this is not the bomb",
    "it was sort of a good movie",
    "BAD ASS",
    "bad-ass",
    "at the bus stop",
    "we waited at the bus stop",
    "well sure oh yeah right",             # "well" (lexicon) three back: no idiom
    "and then oh yeah right",
    "Honestly we all bad ass",             # idiom fires for "ass" only
    "Oh yeah right, like that will work",
    "it was the kiss of death",
    "the kiss of death",
    "this cake is to die for",
    "I saw a beating heart",
    "a beating heart",
    "it will not cut the mustard",
    "we live hand to mouth",
    "a back handed compliment",
    "stop blowing smoke at me",
    "the company is in the red",
    "I am under the weather today",
    "break a leg tonight",
    "she has the upper hand",
    "he is really on the ball",
    "we are cooking with gas now",
]

CAPS = [
    "GOOD",
    "GOOD day",
    "good DAY",
    "I LOVE IT",
    "I love IT",
    "I",
    "A",
    "I LOVE it",
    "I love it",
    "THIS IS GREAT",
    "This is GREAT",
    "This is GREAT!!!",
    "HATE this",
    "GREAT, just GREAT",
    "GOOD!",
    "GOOD!!! good",
    ":D GOOD",
    ":-) GOOD",
    ":D good",
    "XD good",
    "D: GOOD",
    "I GOOD",                              # "I" counts as all caps: no emphasis
    "A GOOD day",
    "I'M HAPPY",
    "I'm HAPPY",
    "GOOD123 day",
    "GOOD 123",
    "123 GOOD",
    "OK then",
    "LOL that was fun",
    "NOT GOOD",
    "WOW. AMAZING. best day",
    "U.S.A. GOOD times",
    "GOOD Ai",
    "GOOD!!!",
    "GOOD !!!",                            # "!!!" is a token that is not upper case
    "BAD bad BAD",
    "Ⓜ GOOD",
    "GOOD A\u01c5",                        # titlecase letter: not isupper()
    "\u216b GOOD day",                     # Roman numeral twelve is upper case
]

PUNCT_HAND = [
    "good!?",
    "good?!",
    "good!?!?",
    "good?!?!?",
    "great! great! great!",
    "bad?!?!",
    "hmm???",
    "what?!",
    "good :( !!!",
    "good annoy!!!",
    "good annoy???",
    "!!!good",
    "good ! ! ! !",
    "good ?",
    "good ? ?",
    "?",
    "?!",
    "! ?",
    "good ¡¡¡",
    "good ！！！",
    "good ？？",
    "good ‽‽",
    "wow!good",
    "is it good?? is it bad??",
    "great video https://example.com/watch?v=abc?t=1",
]

EMOTICONS = [
    ":)",
    ":-)",
    ":(",
    ":-(",
    "<3",
    "</3",
    ":D",
    ":d",
    ":P",
    ":p",
    "xD",
    "XD",
    "xd",
    "x-d",
    "D:",
    "d:",
    "lol",
    "LOL",
    "lmao",
    "sob",
    "ok",
    "OK",
    "(:",
    "):",
    ";)",
    ";-)",
    ":/",
    ":'(",
    "=)",
    "^_^",
    "<3 <3 <3",
    ":-))",
    ":\u00de",
    ":-\u00de",
    "o.O",
    "O.o",
    "O_o",
    "XP",
    "x-p",
    "muah",
    "d=",
    "the movie was fine :) but long :(",
]

TOKENS = [
    "ok!",
    "ok!!!",
    "Ok.",
    "okay!",
    "no.",
    "no!",
    "so, good",
    "(ok)",
    "lol!",
    "<3!",
    ":)!",
    "good:)",
    ":)good",
    "good :) :) :)",
    "(great)",
    "'love'",
    "--bad--",
    "#love",
    "@hate",
    "...happy...",
    "\"great\"",
    "good's",
    "[sad]",
    "{fun}",
    "~love~",
    "$happy$",
    "_great_",
    "*great*",
    "l",
    "l.",
    "(l)",
    "good-bad",
    "don't!",
    "'don't' like",
    "not, good",
    "not. good",
    "very. good",
    "(\u00e9) good",
    "\u00e9\u00e9. good",
]

EMOJI = [
    "😀",
    "😢",
    "💘",
    "💋",
    "😁",
    "❤",
    "😀😀",
    "😀 😢",
    "good😀great",
    "😀good",
    "good😀",
    "good😀 great",
    "I am 😀",
    "😀 I am happy",
    "😢 sad day",
    "❤\ufe0f",
    "❤\ufe0f good",
    "❤\ufe0f❤\ufe0f",
    "❤ ❤",
    "☺\ufe0f",
    "☺",
    "👍",
    "👍🏽",
    "👍🏽 great",
    "🏽 good",
    "👨\u200d👩\u200d👧",
    "👨\u200d👩\u200d👧 happy family",
    "🇫🇷",
    "🇫🇷 good",
    "1\ufe0f\u20e3",
    "1\ufe0f\u20e3 good",
    "#\ufe0f\u20e3 good",
    "💔",
    "I love you 💔",
    "💓",
    "I feel my 💓",
    "🙅 good",
    "😥 good",
    "great 😥 good",
    "🔛 good",
    "good ‼",
    "good ⁉",
    "🆗 good",
    "🆒",
    "GOOD 😀",
    "Ⓜ",
    "good ™",
    "💩",
    "😂😂😂",
    "😭",
    "🙈 good",
    "⛔ good",
    "good 😀😀😀 bad",
    "😀!!!",
    "😀 and 😢",
    "the gift was lovely👍👍👍",
    "he gave me the 💏 of death",
    "❤\ufe0fgood",
    "1😀",
    "Copyright © 2024, good stuff",
]

UNICODE = [
    "\u201cgreat\u201d",
    "\u2018good\u2019",
    "It\u2019s great",
    "I don\u2019t like it",
    "I didn\u2019t love it",
    "won\u2019t be happy",
    "\u00abgood\u00bb",
    "caf\u00e9 was good",
    "na\u00efve but happy",
    "r\u00e9sum\u00e9 looks good",
    "Tr\u00e8s bien, good",
    "\u00c7a va bien",
    "S\u00e3o Paulo is great",
    "Z\u00fcrich great",
    "\u00a1Qu\u00e9 bueno!",
    "\u00bfgood?",
    "pi\u00f1ata fun",
    "\u039f\u0394\u039f\u03a3",
    "\u039f\u0394\u039f\u03a3 good",
    "\u03ba\u03b1\u03bb\u03cc good",
    "\u03a3 good",
    "\u041f\u0440\u0438\u0432\u0435\u0442, good",
    "\u0425\u041e\u0420\u041e\u0428\u041e",
    "\u0425\u041e\u0420\u041e\u0428\u041e good",
    "我很高兴 good",
    "とても良い",
    "좋아요 good",
    "\ud55c",
    "\u062c\u064a\u062f \u062c\u062f\u0627 good",
    "\u05d8\u05d5\u05d1 good",
    "\u0905\u091a\u094d\u091b\u093e good",
    "\u0130Y\u0130",
    "\u0130Y\u0130 good",
    "L\u0130KE",
    "\u212aind of good",                   # Kelvin sign lower-cases to "k"
    "It was \u212aind of good",
    "\u212aILL them",
    "Stra\u00dfe good",
    "KI\u1e9e me",
    "ki\u00df me",
    "\u01c5 good",
    "\uff27\uff2f\uff2f\uff24",
    "\uff27\uff2f\uff2f\uff24 day",
    "\uff47\uff4f\uff4f\uff44",
    "good \uff27\uff2f\uff2f\uff24",
    "\U0001d406\U0001d40e\U0001d40e\U0001d403 day",
    "goo\u0301d",
    "good\u0301",
    "no\u0301 good",
    "good\u200bgreat",
    "\ufeffgood",
    "go\u00adod",
    "\u200fgood",
    "\u017fad",
    "good \u0661\u0662\u0663",
]

WHITESPACE = [
    "",
    " ",
    "   ",
    "\t",
    "\t\t",
    "\u00a0",
    "\u3000",
    " \t \u00a0 ",
    "good\tbad",
    "good\t\tgreat",
    "  good  ",
    "\tgood\t",
    "good\u00a0bad",
    "good\u2003great",
    "good\u202fgreat",
    "good\u205fgreat",
    "good\u1680great",
    "\u3000good\u3000",
    "good\u200abad",
    "not\u00a0good",
    "no\u3000good",
    "kind\u00a0of good",
    "good \u3000",
    "\u2009",
]

# The handful of lines with characters Python's str.split() sees as whitespace
# but a line reader might not treat as ordinary text.  Never at a line's ends.
WHITESPACE_CONTROL = [
    "good\x0bbad",
    "not\x0cgood",
    "good\x1cbad",
    "no\x1dgood",
    "very\x1egood",
    "great\x1fbut\x1fbad",
    "good\u0085great",
    "not\u2028bad",
]

DEGENERATE = [
    ".",
    "!!!",
    "?!?",
    "\u2026",
    "-- -- --",
    "()",
    "😀😢💘",
    "🇫🇷🇩🇪",
    "123",
    "3.14 2.71",
    "1 2 3 4 5",
    "0",
    "-1",
    "+1",
    "100%",
    "$$$",
    "!!!!!!!!!!!!",
    "?????",
    "@#$%^&*",
]

# neg/neu/pos land on or next to a tie at three decimals (0.3625, 0.3125, ...):
# Python's round() keeps the value of the double; x*1000 rounded half-up does not.
ROUNDING = [
    "it was good, sad",
    "it was hate cool",
    "bad sad :)",
    "the hate fun",
    "the good worst",
    "it was good hurt :(",
    "good ok :(",
    "cool lose :)",
]

FLOAT_EDGES = [
    "good hate fine",                      # sum is -2.2e-16: compound -0.0
    "good hate fine!!!",                   # the residue gets the punctuation boost
    "good hate fine???",
    "good fine hate",
    "good fine hate!!!",                   # Python >= 3.12 sum() gives a different sign here
    "hate good fine",
    "love awful no",
    "good :(",
    "good annoy",
    "love hate",
    # exact ties at three decimals (k/16): ties go to even
    "the cat sat on the mat in the house by the red door applaud",
    "the cat sat on the mat in the house by the red door abhor",
    "the cat sat on the mat in a house and fav fav",
    "the cat sat on the mat in the house applaud abhor",
    "we saw the red car in the rain on that day brave",
    "tie tie tie good",
    "good bad good bad",
    "great great great great great great great great",
    "bad bad bad bad bad bad bad bad bad bad",
    "no no no no no no no no no no no no",
]

LEXICON_ODDITIES = [
    "can't stand",
    "I can't stand this",
    "fed up",
    "I am fed up",
    "screwed up",
    "( '}{' )",
    "fav",
    "xp",
    "kk",
    "lmao lol",
    "sob sob",
    "o.o",
    ":-p",
    "D=",
    "no d:",
]

REALISTIC = [
    "Honestly the burger was AMAZING, but the fries were kinda soggy :(",
    "Not the worst hotel I've stayed in, but definitely not the best.",
    "Ugh. Monday again... can't wait for the weekend!!! 😩",
    "This phone is the bomb!!! battery lasts forever 🔋",
    "Worst customer service ever. Never again.",
    "The plot was predictable, yet somehow I loved every minute ❤\ufe0f",
    "meh. it was ok i guess",
    "Absolutely loved it!!! 10/10 would recommend 👍",
    "I wanted to like this movie, I really did, but it was painfully slow.",
    "lol this is so bad it's actually good",
    "Packaging arrived damaged; the item inside was fine though.",
    "Not bad for the price, not great either.",
    "yeah right, like THAT is going to happen",
    "Best. Day. Ever. 😀😀😀",
    "I don\u2019t hate it but I don\u2019t love it",
    "The food was good, the wine was better, and the dessert was to die for!",
    "At least the staff were friendly.",
    "The ending was the least satisfying part of the whole series.",
    "No complaints here, works exactly as described.",
    "Without a doubt the finest pizza in town.",
    "my heart is broken 💔 why would you do this",
    "Kind of disappointed tbh, expected more from them :/",
    "It's not that I dislike it, I just don't love it.",
    "SO HAPPY RIGHT NOW!!!!",
    "So happy right now!!!!",
    "so happy RIGHT NOW!!!!",
    "The new update is hella buggy and kinda slow, smh",
    "Thanks for nothing, great job guys 🙄",
    "Got the job!!! 🎉🎉 can't believe it",
    "it's fine. everything is fine. 🙂",
    "This is not a bad idea, it is a terrible idea.",
    "Seldom have I seen such a beautiful sunset.",
    "Despite the rain, we had a wonderful time at the beach.",
    "The hotel was nice but the bed was uncomfortable and the room was noisy.",
    "I can't stand waiting in line, but the coffee here is worth it.",
    "Love the design, hate the price.",
    "Rarely disappoints, this bakery is the shit.",
    "Five stars!!!!! Would buy again 😍",
    "Caf\u00e9 au lait was d\u00e9licieux, service \u00e9tait lent :(",
    "He said it was \u201cfine\u201d but his face said otherwise",
    "Meh, could be worse, could be better ¯\\_(ツ)_/¯",
    "The instructions were confusing, BUT the support team was great.",
]

# Every special-case idiom of the reference at token positions 1..6 (1-based).
SPECIAL_CASE_PHRASES = [
    "the shit", "the bomb", "bad ass", "badass", "bus stop",
    "yeah right", "kiss of death", "to die for", "beating heart",
]
GRID_PREFIX = ["Then", "we", "all", "said", "that"]   # none is in the lexicon

# A lexicon word three tokens before the idiom's sentiment word (disables the idiom check).
IDIOMS_THREE_BACK = [
    "good we is the shit",
    "nice we is the bomb",
    "love it a bad ass",
    "ugly it a bad ass",
    "sad we the bus stop",
    "happy oh oh yeah right",
    "love it the kiss of death",
    "great it a beating heart",
    "sweet it a badass",
]

# ---------------------------------------------------------------------------
# Generated cases
# ---------------------------------------------------------------------------


def idiom_grid():
    out = []
    for phrase in SPECIAL_CASE_PHRASES:
        for k in range(6):
            out.append(" ".join(GRID_PREFIX[:k] + [phrase]))
    return out


def punctuation_grid():
    out = []
    for base in ("good", "bad", "hello"):
        for n in range(1, 7):
            out.append(base + "!" * n)
        for n in range(1, 6):
            out.append("the movie was " + base + " " + "?" * n)
    return out


REVIEW = (
    "I bought this coffee grinder after reading many glowing reviews, and honestly it is "
    "not bad at all. The burrs are solid, the motor is quiet, and the design is really "
    "beautiful :) But the lid feels kind of cheap, the hopper is SO small, and cleaning "
    "it is a pain!!! Customer support was friendly, at least, though shipping was slow. "
    "Would I buy it again? Maybe... it is not the best, but it is far from the worst. 👍 "
)


def long_lines():
    """Very long lines, each 5,000-60,000 characters (code points)."""
    lines = []
    # 1. a realistic review repeated
    lines.append((REVIEW * 45).rstrip())
    # 2. a long run of "good bad but": one "but" counts, the rest are zeros
    lines.append(("good bad but " * 2500).rstrip())
    # 3. many "but"s with values that collide in list.index()
    chunk = ("kind but ok. nice but nice, but ok nice!! great great but great "
             "brave ok but fine 😀 no good or bad ")
    lines.append((chunk * 300).rstrip())
    # 4. 20,000 tokens of the same word (59,999 characters)
    lines.append(("no " * 20000).rstrip())
    # 5. float drift: a sum that is zero only on paper, repeated
    lines.append(("good hate fine " * 2000).rstrip())
    # 6. 6,000 glued emoji code points
    lines.append("😀" * 3000 + "😢" * 3000)
    # 7. one 8,000-character token without whitespace, then some punctuation
    lines.append("good" * 2000 + "!?!")
    # 8. ALL-CAPS mix with boosters, "least", "kind of" and emoji
    chunk = ("VERY good, not BAD. The movie was KIND OF great!!! I ❤ it. "
             "at least the least bad SLIGHTLY sad ending ")
    lines.append((chunk * 200).rstrip())
    # 9. many kinds of whitespace between tokens
    chunk = "good\u00a0bad\u3000great\tnot ok\u2003so very fine\u202fno good "
    lines.append((chunk * 400).rstrip())
    return lines


# ---------------------------------------------------------------------------


def categories():
    """(name, cases) in output order."""
    return [
        ("negation", NEGATION),
        ("no_rule", NO_RULE),
        ("never_so_this_without_doubt", NEVER_SO_THIS),
        ("least", LEAST),
        ("but", BUT),
        ("boosters_dampeners", BOOSTERS),
        ("idioms_hand", IDIOMS_HAND),
        ("idioms_three_back", IDIOMS_THREE_BACK),
        ("idioms_position_grid", idiom_grid()),
        ("all_caps", CAPS),
        ("punctuation_hand", PUNCT_HAND),
        ("punctuation_grid", punctuation_grid()),
        ("emoticons", EMOTICONS),
        ("tokens_and_stripping", TOKENS),
        ("emoji", EMOJI),
        ("unicode_text", UNICODE),
        ("whitespace", WHITESPACE),
        ("whitespace_control_chars", WHITESPACE_CONTROL),
        ("degenerate", DEGENERATE),
        ("float_edges", FLOAT_EDGES),
        ("rounding_near_ties", ROUNDING),
        ("lexicon_oddities", LEXICON_ODDITIES),
        ("realistic", REALISTIC),
        ("long_lines", long_lines()),
    ]


TSV_SHAPE = re.compile(r"^[^\t]+\t-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?\t")
NEVER = {"\n", "\r", "\u2029"}
ONLY_INSIDE = set("\x0b\x0c\x1c\x1d\x1e\x1f\u0085\u2028")
MAX_ONLY_INSIDE_LINES = 8


def require(condition, message):
    if not condition:
        sys.exit(f"make_hard_cases.py: {message}")


def check(lines):
    """Refuse to write a file that breaks the rules in the module docstring."""
    seen = set()
    special = 0
    for n, line in enumerate(lines, 1):
        where = f"case {n}: {line[:60]!r}"
        require(not (NEVER & set(line)), f"forbidden line break character in {where}")
        if ONLY_INSIDE & set(line):
            special += 1
            require(line[0] not in ONLY_INSIDE and line[-1] not in ONLY_INSIDE,
                    f"control whitespace at the start or end of {where}")
        require(not TSV_SHAPE.match(line), f"looks like a TSV ground-truth line: {where}")
        require(all(not 0xD800 <= ord(c) <= 0xDFFF for c in line), f"lone surrogate in {where}")
        require(len(line) <= 60000, f"longer than 60,000 characters: {where}")
        if line.strip():
            require(line not in seen, f"duplicate {where}")
            seen.add(line)
    require(special <= MAX_ONLY_INSIDE_LINES, f"{special} lines with control whitespace")
    require(not lines[0].startswith("\ufeff"), "the first line must not start with a BOM")
    require(sum(1 for l in lines if len(l) >= 5000) >= 5, "fewer than 5 long lines")
    require(len(lines) >= 600, f"only {len(lines)} cases")


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    stats = "--stats" in argv
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args[0] if args else os.path.join(repo, "tests", "data", "vader", "hard_cases.txt")

    cats = categories()
    lines = [case for _, cases in cats for case in cases]
    check(lines)

    data = "".join(line + "\n" for line in lines).encode("utf-8")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)

    if stats:
        for name, cases in cats:
            print(f"{name:32} {len(cases):5}", file=sys.stderr)
    print(f"wrote {len(lines)} cases to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
