#!/usr/bin/env python3
"""make lint: the shape of the C tree (ARCHITECTURE.md).

Fails on
  - a source file longer than MAX_LINES lines: C under src/ or tests/,
    Python under tests/, bench/ or scripts/, any shell script;
  - a call cycle between .c files of src/: A.c calls (or takes the address
    of) a function that B.c defines, and B.c, directly or through others,
    calls into A.c. Layers call downwards only;
  - two .c files that include each other's header.
Works on the sources alone (no build): comments and string literals are
stripped, functions are the non-static ones defined at the top level.
"""
import os
import re
import subprocess
import sys

MAX_LINES = 600


def tracked(*patterns):
    out = subprocess.run(['git', 'ls-files', *patterns], capture_output=True, text=True, check=True)
    return [p for p in out.stdout.split('\n') if p]


def strip(text):
    """The code without comments, string and character literals."""
    pat = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)

    def repl(m):
        s = m.group(0)
        return '\n' * s.count('\n') if s.startswith('/') else '""'
    return pat.sub(repl, text)


def defined_functions(code):
    """Non-static functions defined at the top level of CODE."""
    names = set()
    depth = 0
    head = ''  # the top-level text since the last ';' or '}'
    for line in code.split('\n'):
        if depth == 0:
            head += line + '\n'
        depth += line.count('{') - line.count('}')
        if depth > 0 and head:
            m = re.search(r'\b(\w+)\s*\([^()]*(\([^()]*\)[^()]*)*\)\s*\{?\s*$', head.strip())
            if m and not re.search(r'\bstatic\b|=\s*$', head[:m.start()]):
                names.add(m.group(1))
            head = ''
        if depth == 0 and line.rstrip().endswith((';', '}')):
            head = ''
    return names


def main():
    bad = []
    for path in tracked('src/*.c', 'src/*.h', 'tests/*.c', 'tests/*.h',
                        'tests/*.py', 'bench/*.py', 'scripts/*.py', '*.sh'):
        with open(path, encoding='utf-8') as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            bad.append(f'{path}: {n} lines, over {MAX_LINES}: split it along its seams')

    sources = tracked('src/*.c')
    code = {}
    for path in sources:
        with open(path, encoding='utf-8') as f:
            code[path] = strip(f.read())
    owner = {}
    for path, text in code.items():
        for name in defined_functions(text):
            owner.setdefault(name, set()).add(path)
    edges = {p: {} for p in sources}
    includes = {}
    for path, text in code.items():
        folder = os.path.dirname(path)
        for name in set(re.findall(r'\b[A-Za-z_]\w*\b', text)):
            for other in owner.get(name, ()):
                if other != path and os.path.dirname(other).split('/')[1] == folder.split('/')[1]:
                    edges[path].setdefault(other, f'calls {name}()')
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)\.h"', open(path, encoding='utf-8').read(), re.M):
            other = os.path.join(folder, inc + '.c')
            if other in edges and other != path:
                includes.setdefault(path, set()).add(other)
    for a in sorted(includes):
        for b in sorted(includes[a]):
            if a < b and a in includes.get(b, ()):
                bad.append(f'{a} and {b} include each other\'s header')
    for scc in strongly_connected(edges):
        if len(scc) > 1:
            lines = [f'  {a} -> {b} ({edges[a][b]})' for a in sorted(scc) for b in sorted(edges[a]) if b in scc]
            bad.append('a cycle between ' + ', '.join(sorted(scc)) + ':\n' + '\n'.join(lines))
    for b in bad:
        print('check-shape: ' + b, file=sys.stderr)
    return 1 if bad else 0


def strongly_connected(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on.discard(w)
                scc.add(w)
                if w == v:
                    break
            out.append(scc)
    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == '__main__':
    sys.exit(main())
