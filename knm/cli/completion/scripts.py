"""The completion scripts of bash, zsh and fish, and how to install them.

Each asks ``knm __complete CWORD WORDS...`` (the words of the line, ``knm`` first, and the index
of the word under the cursor) for one candidate a line. When there is none (a file argument,
say), the shell completes file names as it would without knm's script.
"""

from __future__ import annotations

BASH = r"""# bash completion for knm. Load it from ~/.bashrc:  source <(knm completion bash)
_knm_complete() {
    local line
    COMPREPLY=()
    while IFS= read -r line; do
        COMPREPLY+=("$line")
    done < <(knm __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null)
}
complete -o default -F _knm_complete knm
"""

# Autoloaded from fpath as _knm, the file's body is the completion function and runs it; sourced,
# it defines the function and registers it (compinit must have run).
ZSH = r"""#compdef knm
# zsh completion for knm: see `knm completion --help`.
_knm() {
    local -a candidates
    candidates=(${(f)"$(knm __complete $((CURRENT - 1)) "${words[@]}" 2>/dev/null)"})
    if (( ${#candidates} )); then
        compadd -- "${candidates[@]}"
    else
        _files
    fi
}
if [[ "${funcstack[1]}" == _knm ]]; then
    _knm "$@"
else
    compdef _knm knm
fi
"""

FISH = r"""# fish completion for knm: knm completion fish > ~/.config/fish/completions/knm.fish
function __knm_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l found (knm __complete (count $tokens) $tokens "$current" 2>/dev/null)
    if set -q found[1]
        printf '%s\n' $found
    else
        __fish_complete_path "$current"
    end
end
complete -c knm -f -a '(__knm_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}

INSTALL = """\
  bash  in ~/.bashrc:
          source <(knm completion bash)
  zsh   in ~/.zshrc, after compinit (autoload -Uz compinit && compinit):
          source <(knm completion zsh)
        or once, into a directory of $fpath:
          mkdir -p ~/.zfunc && knm completion zsh > ~/.zfunc/_knm
          (and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath))
  fish  once:
          knm completion fish > ~/.config/fish/completions/knm.fish
"""
