import { login } from "./api.js";
import { h, problem } from "./dom.js";

export function loginView(main, next) {
  const error = h("div", { class: "slot" });
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const button = h("button", { type: "submit", id: "login" }, "Log in");
  const form = h(
    "form",
    { class: "card narrow", id: "login-form" },
    h("h1", {}, "Log in to knm"),
    h("label", { for: "username" }, "User name"),
    username,
    h("label", { for: "password" }, "Password"),
    password,
    button,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.replaceChildren();
    try {
      await login(username.value, password.value);
      password.value = "";
      next();
    } catch (failure) {
      error.append(problem(failure));
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  username.focus();
}
