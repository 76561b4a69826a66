#!/usr/bin/env python3
"""make lint: the shape of the C tree (ARCHITECTURE.md).

Fails on
  - a file longer than MAX_LINES lines: C under src/ or tests/, Python
    under tests/, bench/ or scripts/, any shell script, docs/*.md, the
    protocol's proto/*.proto;
  - a call cycle between .c files of src/: A.c calls (or takes the address
    of) a function that B.c defines, and B.c, directly or through others,
    calls into A.c. Layers call downwards only;
  - two .c files that include each other's header;
  - a call or an include that goes up the layers (LAYERS below,
    ARCHITECTURE.md): a .c may call the functions of, and include the
    headers of, its own layer and the layers beneath it only.
Works on the sources alone (no build): comments and string literals are
stripped, functions are the non-static ones defined at the top level.
"""
import os
import re
import subprocess
import sys

MAX_LINES = 600

# The layers (ARCHITECTURE.md, "Layers"). A .c belongs to the first entry
# that matches it: a file name, or a folder (every .c in it); ORDER below
# ranks them.
#
# Host: the CLI over the library's operations (container, checkpoint,
# restore, exec, ...), which start and call the shim, which runs the VM
# backends; beneath them all, the library's core: the files the shim and the
# VM backends use (a container's state, spec, images, pod share, console,
# cgroup figures, and the helpers log, paths, safefs, config). A new library
# file is an operation; to be usable from the shim or vm/ it must be added
# to the core here, and then may call only core files itself.
HOST_CORE = [f'src/host/lib/{n}.c' for n in (
    'cgroup-mirror', 'cgroup-mirror-render', 'cgroup-oom', 'cgroup-overhead', 'config',
    'console', 'host-note', 'images', 'images-ns', 'images-publish', 'images-walk', 'log', 'paths',
    'pod', 'pod-size', 'resources', 'resources-kept', 'safefs', 'spec', 'spec-confine', 'spec-json',
    'spec-kernel', 'spec-namespaces', 'spec-pod', 'spec-process', 'spec-resources',
    'spec-userns', 'state', 'volumes')]
# Guest: main.c routes; the handlers (every other file: container,
# checkpoint, restore and their helpers) over boot (init, modules), over the
# jobs, over the channel at the bottom.
LAYERS = {
    'host': [('library core', HOST_CORE), ('cli', ['src/host/cli']),
             ('library', ['src/host/lib']), ('shim', ['src/host/shim']), ('vm', ['src/host/vm'])],
    'guest': [('main', ['src/guest/main.c']), ('boot', ['src/guest/init.c', 'src/guest/modules.c']),
              ('jobs', ['src/guest/jobs.c']), ('channel', ['src/guest/channel.c']),
              ('handlers', ['src/guest'])],
}
# Where a layer stands, top first: the order of LAYERS is the order in
# which a file is matched, this one is the order of the layers.
ORDER = {
    'host': ['cli', 'library', 'shim', 'vm', 'library core'],
    'guest': ['main', 'handlers', 'boot', 'jobs', 'channel'],
}
# Includes of a higher layer's header allowed, each for a reason: the
# header gives constants only, no call crosses.
INCLUDE_EXCEPTIONS = {
    ('src/host/lib/images-publish.c', 'vmsnap.h'):
        'the whole-VM files\' names (VMSNAP_META, VMSNAP_STATE, ...), refused in a dump',
}
# Where a quoted #include is looked for after the including file's own
# folder (meson.build: host_inc; the CLI adds its own folder).
HOST_INCLUDE_DIRS = ['src/host/lib', 'src/host/vm', 'src/host/shim', 'src/host/cli']


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


def layer(path):
    """(side, layer name, rank) of a source file; rank 0 is the top."""
    side = path.split('/')[1]
    if side not in LAYERS:
        return None
    for name, matches in LAYERS[side]:
        for m in matches:
            if path == m or (not m.endswith('.c') and path.startswith(m.rstrip('/') + '/')):
                return side, name, ORDER[side].index(name)
    return None


def header_owner(header, including, exists):
    """The .c whose layer a quoted include of HEADER (from INCLUDING)
    belongs to: the .c of the same name beside the header, or for a header
    without one (types, options) a file of the header's folder at its lowest
    layer. None for headers outside src/host and src/guest."""
    folder = os.path.dirname(including)
    dirs = [folder]
    if including.startswith('src/host/'):
        dirs += [d for d in HOST_INCLUDE_DIRS if d != folder]
    for d in dirs:
        h = os.path.join(d, header)
        if not exists(h):
            continue
        c = h[:-2] + '.c'
        if exists(c):
            return c
        ranked = [p for p in exists.sources if os.path.dirname(p) == d and layer(p)]
        return max(ranked, key=lambda p: layer(p)[2]) if ranked else None
    return None


def check_layers(code, raw, owner):
    """Calls and includes that go up the layers: one message each."""
    bad = []
    sources = set(code)

    def exists(p):
        return p in sources or os.path.exists(p)
    exists.sources = sources
    for path in sorted(code):
        me = layer(path)
        if not me:
            continue
        for name in sorted(set(re.findall(r'\b[A-Za-z_]\w*\b', code[path]))):
            for other in sorted(owner.get(name, ())):
                them = layer(other)
                if other != path and them and them[0] == me[0] and them[2] < me[2]:
                    bad.append(f'{path} ({me[1]}) calls {name}() of {other} ({them[1]}), '
                               f'a layer above it: calls go downward (ARCHITECTURE.md)')
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+\.h)"', raw[path], re.M):
            other = header_owner(inc, path, exists)
            them = layer(other) if other else None
            if them and them[0] == me[0] and them[2] < me[2] and \
                    (path, inc) not in INCLUDE_EXCEPTIONS:
                bad.append(f'{path} ({me[1]}) includes {inc} of {them[1]}, a layer above it: '
                           f'includes go downward (ARCHITECTURE.md)')
    return bad


def main():
    bad = []
    for path in tracked('src/*.c', 'src/*.h', 'tests/*.c', 'tests/*.h', 'tests/*.py',
                        'bench/*.py', 'scripts/*.py', '*.sh', 'docs/*.md', 'proto/*.proto'):
        with open(path, encoding='utf-8') as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            bad.append(f'{path}: {n} lines, over {MAX_LINES}: split it along its seams')

    sources = tracked('src/*.c')
    code, raw = {}, {}
    for path in sources:
        with open(path, encoding='utf-8') as f:
            raw[path] = f.read()
        code[path] = strip(raw[path])
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
    bad += check_layers(code, raw, owner)
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
