// What the crew pages keep on this phone for the person signed in, and forgetting it when they leave:
// the service worker's copies of their pages (crew-sw.js, cache "pin311-crew-pages") and the lists,
// position and sent-log kept in localStorage ("pin311.crew.*"). Not the queue nor the refused list:
// those hold each person's own actions, sent or shown only to whoever took them (crew-queue.js).
//
// The sign-in page loads this module alone and it runs at once: whoever signs in next may be someone
// else, whether the last person signed out from a crew page, from another page (every sign-out lands
// on the sign-in page), or their session ran out. Crew pages call it on "Sign out".
export const PAGES_CACHE = "pin311-crew-pages";
const KEEP = ["pin311.crew.queue", "pin311.crew.refused"];

export async function forgetCrewData() {
  for (const name of Object.keys(localStorage)) {
    if (name.startsWith("pin311.crew.") && !KEEP.includes(name)) localStorage.removeItem(name);
  }
  if ("caches" in window) await caches.delete(PAGES_CACHE);
}

if (!document.getElementById("crew-settings")) forgetCrewData();     // not a crew page: the sign-in page
