"""Seed puzzles, so that a fresh install has puzzles to browse and solve without downloading P3.

These are original puzzles in the P3 format (`def sat(x: T, ...) -> bool`), written for this
project rather than copied from the P3 dataset. Each comes with a solution `sol` that the test
suite verifies in the sandbox, and none is solved by small canonical answers (0, "", [], ...).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedPuzzle:
    name: str
    description: str
    sat: str  # source of `def sat(...)`
    sol: str  # source of `def sol(...)`


SEED_PUZZLES: tuple[SeedPuzzle, ...] = (
    # --- arithmetic and number theory -------------------------------------------------------
    SeedPuzzle(
        "Seed_CubeEndingDigits",
        "Find a positive integer whose cube ends in the digits 888.",
        '''def sat(n: int, tail=888) -> bool:
    return n > 0 and n ** 3 % 1000 == tail''',
        '''def sol(tail=888):
    n = 1
    while n ** 3 % 1000 != tail:
        n += 1
    return n''',
    ),
    SeedPuzzle(
        "Seed_DigitProduct",
        "Find a five-digit number whose digits multiply to 2016.",
        '''def sat(n: int, target=2016, width=5) -> bool:
    s = str(n)
    if len(s) != width or not s.isdigit():
        return False
    product = 1
    for ch in s:
        product *= int(ch)
    return product == target''',
        '''def sol(target=2016, width=5):
    for n in range(10 ** (width - 1), 10 ** width):
        product = 1
        for ch in str(n):
            product *= int(ch)
        if product == target:
            return n''',
    ),
    SeedPuzzle(
        "Seed_PowerPrefix",
        "Find an exponent n below 10000 such that the decimal digits of 2**n begin with 2024.",
        '''def sat(n: int, prefix="2024") -> bool:
    return 0 < n < 10000 and str(2 ** n).startswith(prefix)''',
        '''def sol(prefix="2024"):
    n, power = 1, 2
    while not str(power).startswith(prefix):
        n, power = n + 1, power * 2
    return n''',
    ),
    SeedPuzzle(
        "Seed_PrimeGap",
        "Find a prime p such that the next prime after p is exactly p + 14.",
        '''def sat(p: int, gap=14) -> bool:
    def is_prime(k):
        if k < 2:
            return False
        i = 2
        while i * i <= k:
            if k % i == 0:
                return False
            i += 1
        return True

    return is_prime(p) and is_prime(p + gap) and not any(is_prime(q) for q in range(p + 1, p + gap))''',
        '''def sol(gap=14):
    def is_prime(k):
        if k < 2:
            return False
        i = 2
        while i * i <= k:
            if k % i == 0:
                return False
            i += 1
        return True

    p = 2
    while True:
        if is_prime(p) and is_prime(p + gap) and not any(is_prime(q) for q in range(p + 1, p + gap)):
            return p
        p += 1''',
    ),
    SeedPuzzle(
        "Seed_ModularInverse",
        "Find x between 1 and 1008 such that 337 * x leaves remainder 1 when divided by 1009.",
        '''def sat(x: int, a=337, m=1009) -> bool:
    return 0 < x < m and a * x % m == 1''',
        '''def sol(a=337, m=1009):
    for x in range(1, m):
        if a * x % m == 1:
            return x''',
    ),
    SeedPuzzle(
        "Seed_HappyHeight",
        "Find a number that reaches 1 after exactly 6 steps of replacing it by the sum of the squares of its digits.",
        '''def sat(n: int, steps=6) -> bool:
    if n < 1 or n > 10 ** 9:
        return False
    for _ in range(steps):
        if n == 1:
            return False
        n = sum(int(d) ** 2 for d in str(n))
    return n == 1''',
        '''def sol(steps=6):
    start = 1
    while True:
        n, count = start, 0
        while n != 1 and count < steps:
            n = sum(int(d) ** 2 for d in str(n))
            count += 1
        if n == 1 and count == steps:
            return start
        start += 1''',
    ),
    SeedPuzzle(
        "Seed_SquareConcat",
        "Find a positive n such that writing n followed by n + 1 gives a perfect square.",
        '''def sat(n: int) -> bool:
    import math
    if n < 1:
        return False
    v = int(str(n) + str(n + 1))
    r = math.isqrt(v)
    return r * r == v''',
        '''def sol():
    import math
    n = 1
    while True:
        v = int(str(n) + str(n + 1))
        if math.isqrt(v) ** 2 == v:
            return n
        n += 1''',
    ),
    SeedPuzzle(
        "Seed_SquareSumWays",
        "Find a number that is a sum of two positive squares a*a + b*b (a <= b) in exactly three ways.",
        '''def sat(n: int, ways=3) -> bool:
    import math
    if n < 1 or n > 10 ** 8:
        return False
    count = 0
    a = 1
    while 2 * a * a <= n:
        b = math.isqrt(n - a * a)
        if b * b == n - a * a:
            count += 1
        a += 1
    return count == ways''',
        '''def sol(ways=3):
    import math
    n = 1
    while True:
        count = 0
        a = 1
        while 2 * a * a <= n:
            b = math.isqrt(n - a * a)
            if b * b == n - a * a:
                count += 1
            a += 1
        if count == ways:
            return n
        n += 1''',
    ),
    SeedPuzzle(
        "Seed_ManyDivisors",
        "Find a positive integer with exactly 24 divisors.",
        '''def sat(n: int, count=24) -> bool:
    if n < 1 or n > 10 ** 9:
        return False
    total = 0
    d = 1
    while d * d <= n:
        if n % d == 0:
            total += 1 if d * d == n else 2
        d += 1
    return total == count''',
        '''def sol(count=24):
    n = 1
    while True:
        total = 0
        d = 1
        while d * d <= n:
            if n % d == 0:
                total += 1 if d * d == n else 2
            d += 1
        if total == count:
            return n
        n += 1''',
    ),
    SeedPuzzle(
        "Seed_TwoBasePalindrome",
        "Find a number that is a palindrome both in base 7 (with at least 5 digits) and in base 3.",
        '''def sat(n: int, b1=7, b2=3, min_digits=5) -> bool:
    def digits(v, b):
        out = []
        while v:
            out.append(v % b)
            v //= b
        return out

    if n < 1:
        return False
    d1, d2 = digits(n, b1), digits(n, b2)
    return len(d1) >= min_digits and d1 == d1[::-1] and d2 == d2[::-1]''',
        '''def sol(b1=7, b2=3, min_digits=5):
    def digits(v, b):
        out = []
        while v:
            out.append(v % b)
            v //= b
        return out

    n = b1 ** (min_digits - 1)
    while True:
        d1, d2 = digits(n, b1), digits(n, b2)
        if d1 == d1[::-1] and d2 == d2[::-1]:
            return n
        n += 1''',
    ),
    SeedPuzzle(
        "Seed_RisingSquare",
        "Find a positive n whose square has at least six digits, each larger than the one before it.",
        '''def sat(n: int, min_digits=6) -> bool:
    s = str(n * n)
    return n > 0 and len(s) >= min_digits and all(a < b for a, b in zip(s, s[1:]))''',
        '''def sol(min_digits=6):
    n = 1
    while True:
        s = str(n * n)
        if len(s) >= min_digits and all(a < b for a, b in zip(s, s[1:])):
            return n
        n += 1''',
    ),
    SeedPuzzle(
        "Seed_DigitConstraints",
        "Find a four-digit number with distinct digits summing to 20 that is 3 mod 7 and 5 mod 11.",
        '''def sat(n: int, r7=3, r11=5, digit_sum=20) -> bool:
    s = str(n)
    return (n > 0 and len(s) == 4 and len(set(s)) == 4 and n % 7 == r7 and n % 11 == r11
            and sum(int(c) for c in s) == digit_sum)''',
        '''def sol(r7=3, r11=5, digit_sum=20):
    for n in range(1000, 10000):
        s = str(n)
        if len(set(s)) == 4 and n % 7 == r7 and n % 11 == r11 and sum(int(c) for c in s) == digit_sum:
            return n''',
    ),
    # --- strings --------------------------------------------------------------------------
    SeedPuzzle(
        "Seed_Interleave",
        "Find the string that alternates the letters of 'stone' and 'water', starting with 's'.",
        '''def sat(s: str, a="stone", b="water") -> bool:
    return len(s) == len(a) + len(b) and s[0::2] == a and s[1::2] == b''',
        '''def sol(a="stone", b="water"):
    return "".join(x + y for x, y in zip(a, b))''',
    ),
    SeedPuzzle(
        "Seed_VigenereDecode",
        "Find the lowercase text that the Vigenere cipher with key 'sun' turns into 'uichye cyglfr' (spaces kept).",
        '''def sat(s: str, target="uichye cyglfr", key="sun") -> bool:
    if len(s) != len(target):
        return False
    k = 0
    for c, t in zip(s, target):
        if c == " " or t == " ":
            if c != t:
                return False
            continue
        if not "a" <= c <= "z":
            return False
        if chr((ord(c) - 97 + ord(key[k % len(key)]) - 97) % 26 + 97) != t:
            return False
        k += 1
    return True''',
        '''def sol(target="uichye cyglfr", key="sun"):
    out, k = "", 0
    for t in target:
        if t == " ":
            out += " "
        else:
            out += chr((ord(t) - ord(key[k % len(key)])) % 26 + 97)
            k += 1
    return out''',
    ),
    SeedPuzzle(
        "Seed_ConsonantRun",
        "Find a string of 12 different lowercase consonants (no a, e, i, o, u or y).",
        '''def sat(s: str, length=12) -> bool:
    return len(s) == length and len(set(s)) == length and all("a" <= c <= "z" and c not in "aeiouy" for c in s)''',
        '''def sol(length=12):
    return "".join(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in "aeiouy")[:length]''',
    ),
    SeedPuzzle(
        "Seed_RunLength",
        "Find the string whose run-length encoding is '3a2b4c1a5d'.",
        '''def sat(s: str, code="3a2b4c1a5d") -> bool:
    out = ""
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out += str(j - i) + s[i]
        i = j
    return out == code''',
        '''def sol(code="3a2b4c1a5d"):
    return "".join(code[i + 1] * int(code[i]) for i in range(0, len(code), 2))''',
    ),
    SeedPuzzle(
        "Seed_PalindromeAnagram",
        "Rearrange the letters 'aabbccdde' into a palindrome.",
        '''def sat(s: str, letters="aabbccdde") -> bool:
    return sorted(s) == sorted(letters) and s == s[::-1]''',
        '''def sol(letters="aabbccdde"):
    half, middle = "", ""
    for c in sorted(set(letters)):
        k = letters.count(c)
        half += c * (k // 2)
        if k % 2:
            middle = c
    return half + middle + half[::-1]''',
    ),
    SeedPuzzle(
        "Seed_BracketShape",
        "Find a balanced string of 20 brackets with exactly 3 top-level groups and maximum nesting depth 4.",
        '''def sat(s: str, length=20, depth=4, groups=3) -> bool:
    if len(s) != length or set(s) - set("()"):
        return False
    level = top = deepest = 0
    for c in s:
        if c == "(":
            if level == 0:
                top += 1
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
            if level < 0:
                return False
    return level == 0 and deepest == depth and top == groups''',
        '''def sol(length=20, depth=4, groups=3):
    rest = (length - 2 * depth) // 2
    parts = ["(" * depth + ")" * depth]
    for g in range(groups - 1):
        k = rest // (groups - 1) + (1 if g < rest % (groups - 1) else 0)
        parts.append("(" * k + ")" * k)
    return "".join(parts)''',
    ),
    SeedPuzzle(
        "Seed_WordLengths",
        "Find distinct alphabetic words, joined by single spaces, with lengths 3, 1, 4, 1, 5, 9, 2, 6.",
        '''def sat(s: str, lengths=[3, 1, 4, 1, 5, 9, 2, 6]) -> bool:
    words = s.split(" ")
    return [len(w) for w in words] == lengths and len(set(words)) == len(words) and all(w.isalpha() for w in words)''',
        '''def sol(lengths=[3, 1, 4, 1, 5, 9, 2, 6]):
    return " ".join(chr(97 + i) * k for i, k in enumerate(lengths))''',
    ),
    SeedPuzzle(
        "Seed_OverlapCount",
        "Find a 10-letter string over 'a' and 'b' in which 'aba' occurs exactly 4 times (overlaps count).",
        '''def sat(s: str, pattern="aba", times=4, length=10) -> bool:
    if len(s) != length or set(s) - set(pattern):
        return False
    return sum(s[i:i + len(pattern)] == pattern for i in range(len(s))) == times''',
        '''def sol(pattern="aba", times=4, length=10):
    letters = sorted(set(pattern))
    k = len(letters)
    for code in range(k ** length):
        s = ""
        for _ in range(length):
            s += letters[code % k]
            code //= k
        if sum(s[i:i + len(pattern)] == pattern for i in range(len(s))) == times:
            return s''',
    ),
    SeedPuzzle(
        "Seed_ColumnLabel",
        "Find the spreadsheet column label (A, B, ..., Z, AA, AB, ...) of column number 2023.",
        '''def sat(s: str, index=2023) -> bool:
    if not s or not all("A" <= c <= "Z" for c in s):
        return False
    v = 0
    for c in s:
        v = v * 26 + ord(c) - 64
    return v == index''',
        '''def sol(index=2023):
    s = ""
    while index > 0:
        index, r = divmod(index - 1, 26)
        s = chr(65 + r) + s
    return s''',
    ),
    SeedPuzzle(
        "Seed_AllPairsString",
        "Find a 10-letter string over 'abc' that contains each of the 9 two-letter strings over 'abc'.",
        '''def sat(s: str, alphabet="abc", n=2) -> bool:
    k = len(alphabet)
    if len(s) != k ** n + n - 1 or set(s) - set(alphabet):
        return False
    return len({s[i:i + n] for i in range(len(s) - n + 1)}) == k ** n''',
        '''def sol(alphabet="abc", n=2):
    k = len(alphabet)
    s = alphabet[0] * (n - 1)
    seen = set()
    while len(seen) < k ** n:
        for c in reversed(alphabet):
            window = (s + c)[len(s) + 1 - n:]
            if window not in seen:
                seen.add(window)
                s += c
                break
    return s''',
    ),
    SeedPuzzle(
        "Seed_LuhnNumber",
        "Find a 16-digit number starting with 7294 that passes the Luhn checksum.",
        '''def sat(s: str, prefix="7294", length=16) -> bool:
    if len(s) != length or set(s) - set("0123456789") or not s.startswith(prefix):
        return False
    total = 0
    for i, ch in enumerate(reversed(s)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0''',
        '''def sol(prefix="7294", length=16):
    body = prefix + "1" * (length - len(prefix) - 1)
    for last in "0123456789":
        s = body + last
        total = 0
        for i, ch in enumerate(reversed(s)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return s''',
    ),
    SeedPuzzle(
        "Seed_PalindromePieces",
        "Split 'racecarannakayakpoppop' into palindromes of at least three letters each.",
        '''def sat(parts: List[str], s="racecarannakayakpoppop", min_len=3) -> bool:
    return "".join(parts) == s and all(len(p) >= min_len and p == p[::-1] for p in parts)''',
        '''def sol(s="racecarannakayakpoppop", min_len=3):
    best = {0: []}
    for end in range(1, len(s) + 1):
        for start in range(0, end - min_len + 1):
            piece = s[start:end]
            if start in best and piece == piece[::-1]:
                best[end] = best[start] + [piece]
                break
    return best[len(s)]''',
    ),
    SeedPuzzle(
        "Seed_WordSquare",
        "Find four distinct 4-letter lowercase strings, the first 'card', whose square reads the same down as across.",
        '''def sat(rows: List[str], first="card") -> bool:
    n = len(first)
    return (len(rows) == n and rows[0] == first and len(set(rows)) == n
            and all(len(r) == n and r.isalpha() and r.islower() for r in rows)
            and all(rows[i][j] == rows[j][i] for i in range(n) for j in range(n)))''',
        '''def sol(first="card"):
    n = len(first)
    spare = "zyxwvutsrqponmlkjihgfedcba"

    def letter(i, j):
        return first[i + j] if i + j < n else spare[i + j - n]

    return ["".join(letter(i, j) for j in range(n)) for i in range(n)]''',
    ),
    SeedPuzzle(
        "Seed_WordLadder",
        "Go from 'cold' to 'warm' changing one letter at a time, using only words from the given list.",
        '''def sat(x: List[str], start="cold", end="warm",
        words=["cord", "card", "ward", "worm", "word", "corm", "wold", "wald", "warm", "cold"]) -> bool:
    if len(x) < 2 or x[0] != start or x[-1] != end or any(w not in words for w in x):
        return False
    return all(len(a) == len(b) and sum(p != q for p, q in zip(a, b)) == 1 for a, b in zip(x, x[1:]))''',
        '''def sol(start="cold", end="warm",
        words=["cord", "card", "ward", "worm", "word", "corm", "wold", "wald", "warm", "cold"]):
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        if path[-1] == end:
            return path
        for w in words:
            if w not in seen and len(w) == len(path[-1]) and sum(p != q for p, q in zip(w, path[-1])) == 1:
                seen.add(w)
                paths.append(path + [w])''',
    ),
    # --- lists, sorting and search ----------------------------------------------------------
    SeedPuzzle(
        "Seed_StableByLength",
        "Reorder the words by length, keeping words of equal length in their original order.",
        '''def sat(x: List[str],
        words=["pear", "fig", "banana", "kiwi", "apple", "plum", "date", "cherry", "lime"]) -> bool:
    if sorted(x) != sorted(words):
        return False
    return all(len(a) < len(b) or (len(a) == len(b) and words.index(a) < words.index(b))
               for a, b in zip(x, x[1:]))''',
        '''def sol(words=["pear", "fig", "banana", "kiwi", "apple", "plum", "date", "cherry", "lime"]):
    return sorted(words, key=len)''',
    ),
    SeedPuzzle(
        "Seed_FourEqualParts",
        "Give three cut positions that split the list into four non-empty pieces with equal sums.",
        '''def sat(cuts: List[int], nums=[4, 9, -3, 7, 9, 8, 2, 6, 10, 11, 3, 4, 8, 2, 9, 1, 8, 6]) -> bool:
    if len(cuts) != 3 or not 0 < cuts[0] < cuts[1] < cuts[2] < len(nums):
        return False
    a, b, c = cuts
    return sum(nums[:a]) == sum(nums[a:b]) == sum(nums[b:c]) == sum(nums[c:])''',
        '''def sol(nums=[4, 9, -3, 7, 9, 8, 2, 6, 10, 11, 3, 4, 8, 2, 9, 1, 8, 6]):
    quarter = sum(nums) // 4
    cuts, running = [], 0
    for i, v in enumerate(nums[:-1]):
        running += v
        if running == quarter * (len(cuts) + 1) and len(cuts) < 3:
            cuts.append(i + 1)
    return cuts''',
    ),
    SeedPuzzle(
        "Seed_IncreasingRun",
        "Find the indices of a strictly increasing subsequence of length 6 in the list.",
        '''def sat(x: List[int], nums=[5, 1, 9, 2, 7, 3, 8, 4, 10, 6, 11, 0], length=6) -> bool:
    return (len(x) == length and all(0 <= i < len(nums) for i in x)
            and all(i < j and nums[i] < nums[j] for i, j in zip(x, x[1:])))''',
        '''def sol(nums=[5, 1, 9, 2, 7, 3, 8, 4, 10, 6, 11, 0], length=6):
    chains = []
    for j in range(len(nums)):
        best = [j]
        for i in range(j):
            if nums[i] < nums[j] and len(chains[i]) + 1 > len(best):
                best = chains[i] + [j]
        chains.append(best)
    for chain in chains:
        if len(chain) >= length:
            return chain[len(chain) - length:]''',
    ),
    SeedPuzzle(
        "Seed_MergeSpans",
        "Merge the given integer ranges into sorted, disjoint, non-touching ranges covering the same integers.",
        '''def sat(x: List[List[int]], spans=[[5, 9], [1, 3], [8, 12], [20, 22], [2, 4], [15, 15]]) -> bool:
    covered = set()
    for a, b in spans:
        covered.update(range(a, b + 1))
    mine = set()
    for i, iv in enumerate(x):
        if len(iv) != 2 or iv[0] > iv[1] or iv[1] - iv[0] > 1000:
            return False
        if i and iv[0] <= x[i - 1][1] + 1:
            return False
        mine.update(range(iv[0], iv[1] + 1))
    return mine == covered''',
        '''def sol(spans=[[5, 9], [1, 3], [8, 12], [20, 22], [2, 4], [15, 15]]):
    merged = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged''',
    ),
    SeedPuzzle(
        "Seed_HalfSum",
        "Choose distinct indices of the list whose values add up to exactly half of the total.",
        '''def sat(x: List[int], nums=[3, 34, 4, 12, 5, 2, 17, 9, 30, 6]) -> bool:
    return (len(set(x)) == len(x) and all(0 <= i < len(nums) for i in x)
            and 2 * sum(nums[i] for i in x) == sum(nums))''',
        '''def sol(nums=[3, 34, 4, 12, 5, 2, 17, 9, 30, 6]):
    n = len(nums)
    for mask in range(1 << n):
        chosen = [i for i in range(n) if mask >> i & 1]
        if 2 * sum(nums[i] for i in chosen) == sum(nums):
            return chosen''',
    ),
    SeedPuzzle(
        "Seed_RotationPoint",
        "Find how far to rotate the list left so that it becomes sorted.",
        '''def sat(k: int, nums=[(i + 37) % 150 * 3 + 1 for i in range(150)]) -> bool:
    return 0 <= k < len(nums) and nums[k:] + nums[:k] == sorted(nums)''',
        '''def sol(nums=[(i + 37) % 150 * 3 + 1 for i in range(150)]):
    return nums.index(min(nums))''',
    ),
    SeedPuzzle(
        "Seed_MissingNumbers",
        "Find the numbers that, added to the list, make it a rearrangement of 1..30.",
        '''def sat(x: List[int], nums=[12, 5, 30, 1, 22, 17, 9, 28, 3, 14, 25, 20, 2, 11, 29, 6, 16, 24, 8, 13, 21, 4,
                            27, 10, 18, 15, 23], n=30) -> bool:
    return sorted(x + nums) == list(range(1, n + 1))''',
        '''def sol(nums=[12, 5, 30, 1, 22, 17, 9, 28, 3, 14, 25, 20, 2, 11, 29, 6, 16, 24, 8, 13, 21, 4,
             27, 10, 18, 15, 23], n=30):
    return [v for v in range(1, n + 1) if v not in nums]''',
    ),
    SeedPuzzle(
        "Seed_InversionCount",
        "Count the pairs i < j with nums[i] > nums[j] in the given list.",
        '''def sat(count: int, nums=[(i * 37) % 41 for i in range(41)]) -> bool:
    return count == sum(1 for i in range(len(nums)) for j in range(i + 1, len(nums)) if nums[i] > nums[j])''',
        '''def sol(nums=[(i * 37) % 41 for i in range(41)]):
    return sum(1 for i in range(len(nums)) for j in range(i + 1, len(nums)) if nums[i] > nums[j])''',
    ),
    SeedPuzzle(
        "Seed_Knapsack",
        "Pick distinct items with total weight at most 17 and total value at least 37.",
        '''def sat(x: List[int], weights=[4, 7, 2, 9, 5, 3, 6], values=[10, 13, 4, 20, 11, 6, 12], cap=17,
        goal=37) -> bool:
    return (len(set(x)) == len(x) and all(0 <= i < len(weights) for i in x)
            and sum(weights[i] for i in x) <= cap and sum(values[i] for i in x) >= goal)''',
        '''def sol(weights=[4, 7, 2, 9, 5, 3, 6], values=[10, 13, 4, 20, 11, 6, 12], cap=17, goal=37):
    n = len(weights)
    for mask in range(1 << n):
        chosen = [i for i in range(n) if mask >> i & 1]
        if sum(weights[i] for i in chosen) <= cap and sum(values[i] for i in chosen) >= goal:
            return chosen''',
    ),
    # --- combinatorics ---------------------------------------------------------------------
    SeedPuzzle(
        "Seed_AllTriples",
        "List every 3-element subset of {0, ..., 5} once, each as an increasing list.",
        '''def sat(x: List[List[int]], n=6, k=3) -> bool:
    import math
    seen = set()
    for s in x:
        if len(s) != k or any(not 0 <= v < n for v in s) or any(a >= b for a, b in zip(s, s[1:])):
            return False
        seen.add(tuple(s))
    return len(seen) == len(x) == math.comb(n, k)''',
        '''def sol(n=6, k=3):
    def build(start, size):
        if size == 0:
            return [[]]
        return [[v] + rest for v in range(start, n) for rest in build(v + 1, size - 1)]

    return build(0, k)''',
    ),
    SeedPuzzle(
        "Seed_FarSwaps",
        "Find a permutation of 0..9 made only of swaps, with no fixed points and no two neighbours swapped.",
        '''def sat(p: List[int], n=10) -> bool:
    return sorted(p) == list(range(n)) and all(p[i] != i and p[p[i]] == i and abs(p[i] - i) > 1 for i in range(n))''',
        '''def sol(n=10):
    half = n // 2
    return [i + half if i < half else i - half for i in range(n)]''',
    ),
    SeedPuzzle(
        "Seed_GrayCycle",
        "Arrange 0..15 in a cycle where neighbouring numbers differ in exactly one bit.",
        '''def sat(x: List[int], bits=4) -> bool:
    n = 2 ** bits
    if sorted(x) != list(range(n)):
        return False
    return all(bin(x[i] ^ x[(i + 1) % n]).count("1") == 1 for i in range(n))''',
        '''def sol(bits=4):
    return [i ^ (i >> 1) for i in range(2 ** bits)]''',
    ),
    SeedPuzzle(
        "Seed_CoinCounts",
        "Say how many coins of 50, 25, 10, 5 and 1 to use to pay 289 with exactly 13 coins.",
        '''def sat(x: List[int], coins=[50, 25, 10, 5, 1], amount=289, total=13) -> bool:
    return (len(x) == len(coins) and all(c >= 0 for c in x)
            and sum(a * b for a, b in zip(x, coins)) == amount and sum(x) == total)''',
        '''def sol(coins=[50, 25, 10, 5, 1], amount=289, total=13):
    def search(i, left, count):
        if i == len(coins):
            return [] if left == 0 and count == 0 else None
        for k in range(min(left // coins[i], count) + 1):
            rest = search(i + 1, left - k * coins[i], count - k)
            if rest is not None:
                return [k] + rest
        return None

    return search(0, amount, total)''',
    ),
    SeedPuzzle(
        "Seed_CirculantLatin",
        "Fill a 5x5 Latin square over 0..4 with first row [0, 3, 1, 4, 2] and zeros all along the diagonal.",
        '''def sat(x: List[List[int]], first=[0, 3, 1, 4, 2]) -> bool:
    n = len(first)
    if len(x) != n or any(len(r) != n for r in x) or x[0] != first:
        return False
    for i in range(n):
        if sorted(x[i]) != list(range(n)) or sorted(r[i] for r in x) != list(range(n)) or x[i][i] != 0:
            return False
    return True''',
        '''def sol(first=[0, 3, 1, 4, 2]):
    n = len(first)
    return [[first[(j - i) % n] for j in range(n)] for i in range(n)]''',
    ),
    # --- grids -----------------------------------------------------------------------------
    SeedPuzzle(
        "Seed_BestGridPath",
        "Give the cells [row, col] of a path moving only right or down from the top-left to the bottom-right "
        "corner whose values sum to 57.",
        '''def sat(path: List[List[int]], grid=[[3, 1, 4, 1, 5], [9, 2, 6, 5, 3], [5, 8, 9, 7, 9], [3, 2, 3, 8, 4],
                                      [6, 2, 6, 4, 3]], best=57) -> bool:
    rows, cols = len(grid), len(grid[0])
    if not path or path[0] != [0, 0] or path[-1] != [rows - 1, cols - 1]:
        return False
    for (r1, c1), (r2, c2) in zip(path, path[1:]):
        if (r2 - r1, c2 - c1) not in ((1, 0), (0, 1)):
            return False
    return sum(grid[r][c] for r, c in path) == best''',
        '''def sol(grid=[[3, 1, 4, 1, 5], [9, 2, 6, 5, 3], [5, 8, 9, 7, 9], [3, 2, 3, 8, 4], [6, 2, 6, 4, 3]], best=57):
    rows, cols = len(grid), len(grid[0])
    total = [[0] * cols for _ in range(rows)]
    for r in range(rows - 1, -1, -1):
        for c in range(cols - 1, -1, -1):
            nexts = [total[r + 1][c]] if r + 1 < rows else []
            nexts += [total[r][c + 1]] if c + 1 < cols else []
            total[r][c] = grid[r][c] + (max(nexts) if nexts else 0)
    r = c = 0
    path = [[0, 0]]
    while [r, c] != [rows - 1, cols - 1]:
        if c + 1 >= cols or (r + 1 < rows and total[r + 1][c] >= total[r][c + 1]):
            r += 1
        else:
            c += 1
        path.append([r, c])
    return path''',
    ),
    SeedPuzzle(
        "Seed_RotateGrid",
        "Rotate the 3x4 grid a quarter turn clockwise.",
        '''def sat(x: List[List[int]], grid=[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]) -> bool:
    rows, cols = len(grid), len(grid[0])
    return (len(x) == cols and all(len(r) == rows for r in x)
            and all(x[c][rows - 1 - r] == grid[r][c] for r in range(rows) for c in range(cols)))''',
        '''def sol(grid=[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]):
    rows, cols = len(grid), len(grid[0])
    return [[grid[rows - 1 - r][c] for r in range(rows)] for c in range(cols)]''',
    ),
    SeedPuzzle(
        "Seed_IslandCount",
        "Draw a 6x6 grid of 0s and 1s with exactly 4 islands of 1s (side-connected), each of exactly 3 cells.",
        '''def sat(g: List[List[int]], size=6, islands=4, area=3) -> bool:
    if len(g) != size or any(len(r) != size or set(r) - {0, 1} for r in g):
        return False
    seen = set()
    found = []
    for r in range(size):
        for c in range(size):
            if g[r][c] and (r, c) not in seen:
                seen.add((r, c))
                stack = [(r, c)]
                count = 0
                while stack:
                    a, b = stack.pop()
                    count += 1
                    for na, nb in ((a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)):
                        if 0 <= na < size and 0 <= nb < size and g[na][nb] and (na, nb) not in seen:
                            seen.add((na, nb))
                            stack.append((na, nb))
                found.append(count)
    return found == [area] * islands''',
        '''def sol(size=6, islands=4, area=3):
    g = [[0] * size for _ in range(size)]

    def free(cells):
        for r, c in cells:
            if not (0 <= r < size and 0 <= c < size) or g[r][c]:
                return False
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= nr < size and 0 <= nc < size and g[nr][nc]:
                    return False
        return True

    placed = 0
    for r in range(size):
        for c in range(size):
            for cells in ([(r, c + i) for i in range(area)], [(r + i, c) for i in range(area)]):
                if placed < islands and free(cells):
                    for a, b in cells:
                        g[a][b] = 1
                    placed += 1
    return g''',
    ),
    SeedPuzzle(
        "Seed_SudokuFour",
        "Complete the 4x4 sudoku (0 marks an empty cell): rows, columns and 2x2 boxes each hold 1..4.",
        '''def sat(x: List[List[int]], puzzle=[[0, 0, 3, 0], [3, 0, 0, 2], [0, 4, 0, 0], [0, 0, 1, 0]]) -> bool:
    if len(x) != 4 or any(len(r) != 4 for r in x):
        return False
    full = [1, 2, 3, 4]
    for i in range(4):
        if sorted(x[i]) != full or sorted(r[i] for r in x) != full:
            return False
    for br in (0, 2):
        for bc in (0, 2):
            if sorted(x[br + a][bc + b] for a in range(2) for b in range(2)) != full:
                return False
    return all(puzzle[r][c] in (0, x[r][c]) for r in range(4) for c in range(4))''',
        '''def sol(puzzle=[[0, 0, 3, 0], [3, 0, 0, 2], [0, 4, 0, 0], [0, 0, 1, 0]]):
    g = [row[:] for row in puzzle]

    def fits(r, c, v):
        if v in g[r] or any(g[i][c] == v for i in range(4)):
            return False
        br, bc = r - r % 2, c - c % 2
        return all(g[br + a][bc + b] != v for a in range(2) for b in range(2))

    def fill(k):
        if k == 16:
            return True
        r, c = divmod(k, 4)
        if g[r][c]:
            return fill(k + 1)
        for v in range(1, 5):
            if fits(r, c, v):
                g[r][c] = v
                if fill(k + 1):
                    return True
                g[r][c] = 0
        return False

    fill(0)
    return g''',
    ),
    SeedPuzzle(
        "Seed_StillLife",
        "Draw a 6x6 Game of Life pattern with 8 live cells, an empty border, that never changes.",
        '''def sat(g: List[List[int]], size=6, alive=8) -> bool:
    if len(g) != size or any(len(r) != size or set(r) - {0, 1} for r in g):
        return False
    if sum(map(sum, g)) != alive or any(g[0]) or any(g[-1]) or any(r[0] or r[-1] for r in g):
        return False
    for r in range(size):
        for c in range(size):
            n = sum(g[r + a][c + b] for a in (-1, 0, 1) for b in (-1, 0, 1)
                    if (a or b) and 0 <= r + a < size and 0 <= c + b < size)
            if g[r][c] != (1 if n == 3 or (n == 2 and g[r][c]) else 0):
                return False
    return True''',
        '''def sol(size=6, alive=8):
    g = [[0] * size for _ in range(size)]
    for r, c in ((1, 2), (1, 3), (2, 1), (2, 4), (3, 1), (3, 4), (4, 2), (4, 3)):
        g[r][c] = 1
    return g''',
    ),
    SeedPuzzle(
        "Seed_SpiralFill",
        "Fill a 4x5 grid so that reading it in a clockwise spiral from the top-left gives 1, 2, ..., 20.",
        '''def sat(x: List[List[int]], rows=4, cols=5) -> bool:
    if len(x) != rows or any(len(r) != cols for r in x):
        return False
    top, bottom, left, right = 0, rows - 1, 0, cols - 1
    order = []
    while top <= bottom and left <= right:
        order += [x[top][c] for c in range(left, right + 1)]
        order += [x[r][right] for r in range(top + 1, bottom + 1)]
        if top < bottom:
            order += [x[bottom][c] for c in range(right - 1, left - 1, -1)]
        if left < right:
            order += [x[r][left] for r in range(bottom - 1, top, -1)]
        top, bottom, left, right = top + 1, bottom - 1, left + 1, right - 1
    return order == list(range(1, rows * cols + 1))''',
        '''def sol(rows=4, cols=5):
    g = [[0] * cols for _ in range(rows)]
    r, c, dr, dc = 0, 0, 0, 1
    for v in range(1, rows * cols + 1):
        g[r][c] = v
        nr, nc = r + dr, c + dc
        if not (0 <= nr < rows and 0 <= nc < cols) or g[nr][nc]:
            dr, dc = dc, -dr
            nr, nc = r + dr, c + dc
        r, c = nr, nc
    return g''',
    ),
    # --- geometry and floats ---------------------------------------------------------------
    SeedPuzzle(
        "Seed_Circumcircle",
        "Give the centre x, y and radius r of the circle through (1, 2), (5, 8) and (9, -4).",
        '''def sat(c: List[float], pts=[[1.0, 2.0], [5.0, 8.0], [9.0, -4.0]]) -> bool:
    if len(c) != 3:
        return False
    x, y, r = c
    return r > 0 and all(abs(((px - x) ** 2 + (py - y) ** 2) ** 0.5 - r) < 1e-6 for px, py in pts)''',
        '''def sol(pts=[[1.0, 2.0], [5.0, 8.0], [9.0, -4.0]]):
    (ax, ay), (bx, by), (cx, cy) = pts
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    ux = ((ax * ax + ay * ay) * (by - cy) + (bx * bx + by * by) * (cy - ay) + (cx * cx + cy * cy) * (ay - by)) / d
    uy = ((ax * ax + ay * ay) * (cx - bx) + (bx * bx + by * by) * (ax - cx) + (cx * cx + cy * cy) * (bx - ax)) / d
    return [ux, uy, ((ax - ux) ** 2 + (ay - uy) ** 2) ** 0.5]''',
    ),
    SeedPuzzle(
        "Seed_ClosestOnSegment",
        "Find t in [0, 1] such that the point a + t * (b - a) is the point of segment ab closest to p.",
        '''def sat(t: float, a=[0.0, 1.0], b=[7.0, 4.0], p=[3.0, 6.5]) -> bool:
    if not 0 <= t <= 1:
        return False
    dx, dy = b[0] - a[0], b[1] - a[1]
    qx, qy = a[0] + t * dx, a[1] + t * dy
    return abs((p[0] - qx) * dx + (p[1] - qy) * dy) < 1e-9''',
        '''def sol(a=[0.0, 1.0], b=[7.0, 4.0], p=[3.0, 6.5]):
    dx, dy = b[0] - a[0], b[1] - a[1]
    return ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)''',
    ),
    SeedPuzzle(
        "Seed_SelfPower",
        "Find a positive real x with x ** x equal to 5, to within 1e-9.",
        '''def sat(x: float, target=5.0) -> bool:
    return 0 < x < 100 and abs(x ** x - target) < 1e-9''',
        '''def sol(target=5.0):
    lo, hi = 1.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid ** mid < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2''',
    ),
    SeedPuzzle(
        "Seed_Incenter",
        "Find the point inside the triangle (0, 0), (8, 0), (2, 6) that is equally far from all three sides.",
        '''def sat(p: List[float], tri=[[0.0, 0.0], [8.0, 0.0], [2.0, 6.0]]) -> bool:
    if len(p) != 2:
        return False
    ds = []
    for i in range(3):
        (x1, y1), (x2, y2) = tri[i], tri[(i + 1) % 3]
        cross = (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1)
        ds.append(cross / ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5)
    return min(ds) > 0 and max(ds) - min(ds) < 1e-6''',
        '''def sol(tri=[[0.0, 0.0], [8.0, 0.0], [2.0, 6.0]]):
    (ax, ay), (bx, by), (cx, cy) = tri
    a = ((bx - cx) ** 2 + (by - cy) ** 2) ** 0.5
    b = ((ax - cx) ** 2 + (ay - cy) ** 2) ** 0.5
    c = ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5
    s = a + b + c
    return [(a * ax + b * bx + c * cx) / s, (a * ay + b * by + c * cy) / s]''',
    ),
    SeedPuzzle(
        "Seed_HandsMeet",
        "How many minutes after 3 o'clock do the hour and minute hands of a clock first coincide?",
        '''def sat(m: float, hour=3) -> bool:
    return 0 <= m < 60 and abs((30 * hour + 0.5 * m) - 6 * m) < 1e-9''',
        '''def sol(hour=3):
    return 30 * hour / 5.5''',
    ),
    SeedPuzzle(
        "Seed_MeanSpread",
        "Find five different numbers with mean 3 and (population) standard deviation 2.",
        '''def sat(x: List[float], n=5, mean=3.0, std=2.0) -> bool:
    if len(x) != n or len(set(x)) != n:
        return False
    m = sum(x) / n
    s = (sum((v - m) ** 2 for v in x) / n) ** 0.5
    return abs(m - mean) < 1e-9 and abs(s - std) < 1e-9''',
        '''def sol(n=5, mean=3.0, std=2.0):
    b = (n * std * std / 20) ** 0.5
    return [mean - 3 * b, mean - b, mean, mean + b, mean + 3 * b]''',
    ),
)
