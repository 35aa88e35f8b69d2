// The bare worker the benchmarks compare Boomerang against: no bindings, no routing, no I/O.
export default {
  fetch() {
    return new Response("hello", { headers: { "content-type": "text/plain" } });
  },
};
