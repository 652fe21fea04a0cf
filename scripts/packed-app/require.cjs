// Every package loads with require() from CommonJS.
const names = process.argv.slice(2);
const loaded = names.map((name) => [name, Object.keys(require(name)).length]);
console.log(JSON.stringify(Object.fromEntries(loaded)));
