// The parts of CodeMirror 6 the demo editor uses, as one script: window.AsktaCodeMirror.
import {EditorView, basicSetup} from "codemirror";
import {EditorState} from "@codemirror/state";
import {keymap} from "@codemirror/view";
import {indentWithTab} from "@codemirror/commands";
import {python} from "@codemirror/lang-python";
import {unifiedMergeView} from "@codemirror/merge";

window.AsktaCodeMirror = {EditorView, EditorState, basicSetup, keymap, indentWithTab, python,
                          unifiedMergeView};
