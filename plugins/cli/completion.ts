/**
 * `flax completion bash|zsh`: the shell side of yargs' completion. The
 * script runs the flax being completed — the command word as typed
 * (`flax`, `/opt/cni/bin/flax`, `dist/bin/flax`), so that it works without
 * flax on PATH — with `--get-yargs-completions <words>`, which yargs answers
 * from the COMMANDS table (commands, verbs, options, choices). yargs' own
 * `completion` command picks the shell from $SHELL and calls `$0`, which in
 * flax's launcher is the .js beside the snapshot, not a command: hence these.
 */

export type CompletionShell = 'bash' | 'zsh';

const BASH = `###-begin-flax-completions-###
# flax command completion (bash). Install: flax completion bash > /etc/bash_completion.d/flax
_flax_completions()
{
    local cur_word type_list
    cur_word="\${COMP_WORDS[COMP_CWORD]}"
    # ask flax (the one being completed) for the candidates of the words so far
    mapfile -t type_list < <("\${COMP_WORDS[0]}" --get-yargs-completions "\${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null)
    mapfile -t COMPREPLY < <(compgen -W "$( printf '%q ' "\${type_list[@]}" )" -- "\${cur_word}")
    return 0
}
complete -o bashdefault -o default -F _flax_completions flax
###-end-flax-completions-###
`;

// yargs answers "name:description" pairs when it runs under zsh (ZSH_NAME set), which _describe shows.
const ZSH = `#compdef flax
###-begin-flax-completions-###
# flax command completion (zsh). Install: flax completion zsh > "\${fpath[1]}/_flax" (then compinit), or source it
_flax_completions()
{
  local reply
  local si=$IFS
  IFS=$'\\n' reply=($(ZSH_NAME=zsh "\${words[1]}" --get-yargs-completions "\${(@)words[1,CURRENT]}" 2>/dev/null))
  IFS=$si
  if [[ \${#reply} -gt 0 ]]; then
    _describe 'values' reply
  else
    _default
  fi
}
if [[ "\${zsh_eval_context[-1]}" == "loadautofunc" ]]; then
  _flax_completions "$@"
else
  compdef _flax_completions flax
fi
###-end-flax-completions-###
`;

export function completionScript(shell: CompletionShell): string {
  return shell === 'zsh' ? ZSH : BASH;
}
