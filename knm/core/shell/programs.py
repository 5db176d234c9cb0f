"""Programs the guard-rail's walk knows by name: shells, interpreters, fetchers, decoders and
the tools whose output sets up a shell's environment."""

from __future__ import annotations

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "rbash", "fish", "yash",
                    "posh", "tcsh", "csh"})  # fmt: skip


INTERPRETERS = SHELLS | frozenset(
    {"python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "Rscript",
     "tclsh", "pwsh", "irb", "jshell", "osascript"}
)  # fmt: skip


FETCHERS = frozenset({"curl", "wget", "fetch", "nc", "ncat", "netcat", "socat", "http", "https",
                      "aria2c", "lynx", "links", "w3m", "ftp", "tftp", "scp", "rsync"})  # fmt: skip


DECODERS = frozenset({"base64", "base32", "basenc", "xxd", "openssl", "gzip", "gunzip", "zcat",
                      "bzcat", "bunzip2", "bzip2", "xz", "unxz", "xzcat", "zstd", "zstdcat",
                      "unzstd", "lz4", "lz4cat", "uudecode", "tr", "rev", "gpg", "age",
                      "unzip", "funzip"})  # fmt: skip


#: Programs whose output is routinely ``eval``-ed to set up a shell's environment.
ENV_SETUP = frozenset({"ssh-agent", "gpg-agent", "dircolors", "direnv", "pyenv", "rbenv",
                       "nodenv", "brew", "opam", "keychain", "locale", "resize", "starship",
                       "zoxide", "conda", "mise", "rtx", "minikube", "docker-machine"})  # fmt: skip


def program_name(word: str) -> str:
    if word[:1] == "\\":
        word = word.lstrip("\\")
    return (word.rsplit("/", 1)[-1] or word) if "/" in word else word
