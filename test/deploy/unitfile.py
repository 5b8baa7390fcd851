"""Just enough of systemd's unit-file semantics to run a service's command lines without
systemd as PID 1 (tests only): [Service] key lists, Environment=/EnvironmentFile= and the
ExecStart-style variable expansion ("${VAR}" one word, a lone "$VAR" split on whitespace)."""
import re
import shlex

EXEC_PREFIXES = "-+!@:|"


def parse(text):
    """{section: {key: [values in order]}}; backslash-continued lines joined."""
    out, section = {}, None
    lines = text.replace("\\\n", " ").splitlines()
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def parse_env_file(text):
    """KEY=value lines of an EnvironmentFile (quotes stripped, comments ignored)."""
    env = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def environment(service, env_file_text=None):
    """Environment= assignments, then the EnvironmentFile (which overrides them)."""
    env = {}
    for value in service.get("Environment", []):
        for item in shlex.split(value):
            key, _, val = item.partition("=")
            env[key] = val
    if env_file_text is not None:
        env.update(parse_env_file(env_file_text))
    return env


def expand(command, env):
    """(prefixes, argv) for one Exec*= line, variables expanded like systemd does."""
    i = 0
    while i < len(command) and command[i] in EXEC_PREFIXES:
        i += 1
    prefixes, rest = command[:i], command[i:]
    argv = []
    for word in shlex.split(rest):
        lone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if lone:
            argv.extend(env.get(lone.group(1), "").split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return prefixes, argv
