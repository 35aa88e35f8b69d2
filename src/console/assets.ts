/**
 * The console's stylesheet and its one script, served from the worker itself (no build step, no CDN). The script
 * only adds what a server-rendered page cannot do alone: the live tail, the cron preview while typing, the publish
 * form's command preview, confirmations and "select all". Every page works without it.
 */

export const CSS = `
:root{--bg:#f7f7f8;--fg:#17181c;--muted:#555a66;--line:#d5d7dd;--card:#fff;--accent:#1d4ed8;--accent-fg:#fff;
--ok:#116329;--ok-bg:#dcfce7;--bad:#9f1239;--bad-bg:#ffe4e6;--warn:#7c4a03;--warn-bg:#fef3c7;--info:#1e3a8a;--info-bg:#dbeafe;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:15px;line-height:1.45;color:var(--fg);background:var(--bg)}
*{box-sizing:border-box}body{margin:0}a{color:var(--accent)}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:.25rem 1rem;padding:.5rem 1rem;background:#111827;color:#fff}
header.top .brand{font-weight:700;color:#fff;text-decoration:none;margin-right:.5rem}
header.top nav{display:flex;flex-wrap:wrap;gap:.25rem}
header.top nav a{color:#e5e7eb;text-decoration:none;padding:.35rem .55rem;border-radius:6px}
header.top nav a[aria-current=page]{background:#374151;color:#fff}
header.top nav a:hover,header.top nav a:focus-visible{background:#1f2937;color:#fff}
header.top .who{margin-left:auto;display:flex;align-items:center;gap:.5rem;font-size:.9rem;color:#e5e7eb}
main{padding:1rem;max-width:1200px;margin:0 auto}
h1{font-size:1.35rem;margin:.25rem 0 1rem}h2{font-size:1.1rem;margin:1.25rem 0 .5rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem;margin-bottom:1rem}
.card>h2:first-child,.card>form>h2:first-child{margin-top:0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:1rem}
.stat{font-size:1.6rem;font-weight:700}.muted{color:var(--muted)}.small{font-size:.85rem}
.table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px;background:var(--card)}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);background:#f1f2f4}
tr.group td{background:#fafafa}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:#0f172a;color:#e2e8f0;padding:.75rem;border-radius:6px;overflow:auto;max-height:28rem;white-space:pre-wrap;word-break:break-all}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:999px;font-size:.78rem;font-weight:600;border:1px solid transparent}
.s-DELIVERED,.s-SUCCESS,.s-RUN_SUCCESS{background:var(--ok-bg);color:var(--ok)}.s-FAILED,.s-ERROR,.s-FAIL,.s-RUN_FAILED{background:var(--bad-bg);color:var(--bad)}
.s-RETRY,.s-CANCEL_REQUESTED,.s-CANCELED,.s-paused,.s-RUN_CANCELED{background:var(--warn-bg);color:var(--warn)}
.s-CREATED,.s-ACTIVE,.s-IN_PROGRESS,.s-active,.s-RUN_STARTED{background:var(--info-bg);color:var(--info)}
.redacted{background:#ede9fe;color:#4c1d95}
form.inline{display:inline}
label{display:block;font-weight:600;font-size:.9rem;margin-bottom:.2rem}
input,select,textarea,button{font:inherit}
input[type=text],input[type=url],input[type=number],input[type=password],input[type=datetime-local],select,textarea{width:100%;padding:.4rem .5rem;border:1px solid #8a8f9c;border-radius:6px;background:#fff;color:var(--fg)}
textarea{min-height:6rem;font-family:ui-monospace,monospace;font-size:.85rem}
input[aria-invalid=true]{border-color:var(--bad);outline-color:var(--bad)}
.fields{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:.75rem;align-items:end}
.fields .wide{grid-column:1/-1}
button,.button{display:inline-block;padding:.4rem .8rem;border-radius:6px;border:1px solid #4b5563;background:#fff;color:var(--fg);cursor:pointer;text-decoration:none;font-weight:600}
button.primary,.button.primary{background:var(--accent);border-color:var(--accent);color:var(--accent-fg)}
button.danger{border-color:var(--bad);color:var(--bad)}
button:focus-visible,a:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible,summary:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.actions{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}
.flash{padding:.6rem .8rem;border-radius:6px;margin-bottom:1rem;border:1px solid}
.flash.error{background:var(--bad-bg);color:var(--bad);border-color:#fda4af}.flash.ok{background:var(--ok-bg);color:var(--ok);border-color:#86efac}
.timeline{list-style:none;padding:0;margin:0;border-left:3px solid var(--line)}
.timeline li{margin:0 0 .75rem .9rem;position:relative}
.timeline li::before{content:"";position:absolute;left:-1.35rem;top:.35rem;width:.7rem;height:.7rem;border-radius:50%;background:var(--line)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-all}
.chart{display:flex;align-items:flex-end;gap:2px;height:80px;border-bottom:1px solid var(--line)}
.chart span{flex:1;background:#3b82f6;min-height:1px}
.pager{display:flex;gap:.5rem;margin:.75rem 0}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:10}
@media (max-width:640px){main{padding:.6rem}header.top .who{margin-left:0}th,td{padding:.35rem .4rem}.hide-sm{display:none}}
`;

export const JS = `
(function(){
"use strict";
function $(s,r){return (r||document).querySelector(s)}
function $$(s,r){return Array.prototype.slice.call((r||document).querySelectorAll(s))}
// Confirmations for destructive buttons.
document.addEventListener("submit",function(e){var f=e.target;var q=(e.submitter&&e.submitter.getAttribute("data-confirm"))||f.getAttribute("data-confirm");if(q&&!window.confirm(q))e.preventDefault()});
// "Select all" boxes.
$$("input[data-select-all]").forEach(function(box){box.addEventListener("change",function(){$$("input[name='"+box.getAttribute("data-select-all")+"']").forEach(function(b){b.checked=box.checked})})});
// Parts of a page that take longer to compute are fetched once it is shown.
$$("[data-fragment]").forEach(function(el){fetch(el.getAttribute("data-fragment"),{credentials:"same-origin",headers:{"x-fragment":"1"}}).then(function(r){return r.ok?r.text():null}).then(function(html){if(html!==null)el.innerHTML=html})});
// Cron preview while typing.
var cron=$("#cron");
if(cron){var out=$("#cron-preview"),tz=$("#cron-tz"),timer=null;
 var run=function(){var v=cron.value.trim();var zone=tz?tz.value:"";var expr=(zone&&v.indexOf("CRON_TZ=")!==0?"CRON_TZ="+zone+" ":"")+v;
  if(!v){out.textContent="";cron.setCustomValidity("");cron.removeAttribute("aria-invalid");return}
  fetch("/console/cron?expr="+encodeURIComponent(expr),{credentials:"same-origin"}).then(function(r){return r.json()}).then(function(j){
   out.textContent="";
   if(j.error){cron.setCustomValidity(j.error);cron.setAttribute("aria-invalid","true");var p=document.createElement("p");p.className="flash error";p.setAttribute("role","alert");p.textContent=j.error;out.appendChild(p);return}
   cron.setCustomValidity("");cron.setAttribute("aria-invalid","false");
   var w=document.createElement("p");w.textContent=j.words;out.appendChild(w);
   var ol=document.createElement("ol");ol.className="small";j.next.forEach(function(t){var li=document.createElement("li");li.textContent=t;ol.appendChild(li)});out.appendChild(ol)})};
 var later=function(){clearTimeout(timer);timer=setTimeout(run,150)};
 cron.addEventListener("input",later);if(tz)tz.addEventListener("change",later);run()}
// Publish form: the same request as curl and as SDK code.
var pub=$("#publish-form");
if(pub){var update=function(){var d=new FormData(pub);var dest=(d.get("destination")||"").toString().trim();
  var origin=location.origin;var h=[];var opts=[];
  var add=function(name,field,sdk,isNum){var v=(d.get(field)||"").toString().trim();if(!v)return;h.push([name,v]);if(sdk)opts.push("  "+sdk+": "+(isNum?v:JSON.stringify(v)))};
  add("Upstash-Method","method","method");add("Upstash-Delay","delay","delay",false);add("Upstash-Not-Before","notBefore","notBefore",true);
  add("Upstash-Retries","retries","retries",true);add("Upstash-Callback","callback","callback");add("Upstash-Failure-Callback","failureCallback","failureCallback");
  add("Upstash-Deduplication-Id","deduplicationId","deduplicationId");add("Upstash-Label","label","label");add("Upstash-Flow-Control-Key","flowControlKey",null);
  var fcv=(d.get("flowControlValue")||"").toString().trim();if(fcv)h.push(["Upstash-Flow-Control-Value",fcv]);
  var fck=(d.get("flowControlKey")||"").toString().trim();if(fck)opts.push("  flowControl: { key: "+JSON.stringify(fck)+(fcv?" /* "+fcv+" */":"")+" }");
  (d.get("headers")||"").toString().split(/\\n/).forEach(function(line){var i=line.indexOf(":");if(i>0){var k=line.slice(0,i).trim(),v=line.slice(i+1).trim();h.push(["Upstash-Forward-"+k,v])}});
  var body=(d.get("body")||"").toString();var q=function(s){return "'"+s.replace(/'/g,"'\\\\''")+"'"};
  var lines=["curl -X POST "+q(origin+"/v2/publish/"+dest),"  -H "+q("Authorization: Bearer $QSTASH_TOKEN")];
  h.forEach(function(p){lines.push("  -H "+q(p[0]+": "+p[1]))});if(body)lines.push("  -d "+q(body));
  $("#curl").textContent=lines.join(" \\\\\\n");
  var target=/^https?:/.test(dest)?"  url: "+JSON.stringify(dest):"  urlGroup: "+JSON.stringify(dest);
  var sdk=["import { Client } from \\"@upstash/qstash\\";","const client = new Client({ baseUrl: "+JSON.stringify(origin)+", token: process.env.QSTASH_TOKEN! });","await client.publish({",target+","];
  if(body)sdk.push("  body: "+JSON.stringify(body)+",");opts.forEach(function(o){sdk.push(o+",")});sdk.push("});");
  $("#sdk").textContent=sdk.join("\\n")};
 pub.addEventListener("input",update);update()}
// Live tail of the logs, over Server-Sent Events.
var tail=$("#tail-toggle");
if(tail){var list=$("#tail-list"),status=$("#tail-status"),es=null;
 var row=function(e){var tr=document.createElement("tr");
  var cells=[new Date(e.time).toISOString().replace("T"," ").replace("Z",""),e.state,e.messageId,e.url||"",e.responseStatus==null?"":String(e.responseStatus)];
  cells.forEach(function(text,i){var td=document.createElement("td");if(i===1){var b=document.createElement("span");b.className="badge s-"+text;b.textContent=text;td.appendChild(b)}
   else if(i===2){var a=document.createElement("a");a.href="/console/messages/"+encodeURIComponent(text);a.textContent=text;a.className="mono";td.appendChild(a)}else td.textContent=text;tr.appendChild(td)});
  list.insertBefore(tr,list.firstChild);while(list.children.length>200)list.removeChild(list.lastChild)};
 var start=function(){es=new EventSource("/console/tail"+location.search);status.textContent="Live: waiting for new events";
  es.addEventListener("log",function(m){row(JSON.parse(m.data));status.textContent="Live: updated "+new Date().toLocaleTimeString()});
  es.onerror=function(){status.textContent="Live: reconnecting"}};
 var stop=function(){if(es)es.close();es=null;status.textContent="Live tail off"};
 tail.addEventListener("change",function(){$("#tail").hidden=!tail.checked;if(tail.checked)start();else stop()});
 if(tail.checked){$("#tail").hidden=false;start()}}
})();
`;
