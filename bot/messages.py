"""Everything the bot and the handoff service say in their own words, in every language
the assistant serves (knowledge-base answers live in ``data/faq``).

One table for the action server and the handoff service alike, so a customer writing in
English, Russian, Georgian, Serbian (Latin script), Latvian or Tagalog hears the same
language from the bot, the queue and the survey. Unknown languages fall back to English.
"""

from __future__ import annotations

from datetime import datetime

FALLBACK = "en"

TEXTS: dict[str, dict[str, str]] = {
    "greet_back": {
        "en": "Hi {name}, welcome back! What can I help you with today?",
        "ru": "Здравствуйте, {name}, рады снова вас видеть! Чем могу помочь сегодня?",
        "ka": "გამარჯობა, {name}, კეთილი იყოს თქვენი დაბრუნება! რით შემიძლია დაგეხმაროთ დღეს?",
        "sr": "Zdravo, {name}, drago nam je što ste ponovo tu! Kako mogu da vam pomognem danas?",
        "lv": "Sveiki, {name}, prieks jūs atkal redzēt! Kā varu jums šodien palīdzēt?",
        "tl": "Hi {name}, welcome back po! Paano ko po kayo matutulungan ngayon?",
    },
    "greet": {
        "en": "Hi! I'm Brightline's virtual assistant. Ask me about your bill, plan, order, delivery, returns, "
        "outages or devices.",
        "ru": "Здравствуйте! Я виртуальный помощник Brightline. Спросите меня о счёте, тарифе, заказе, доставке, "
        "возврате, авариях или устройствах.",
        "ka": "გამარჯობა! მე ვარ Brightline-ის ვირტუალური ასისტენტი. მკითხეთ ანგარიშის, ტარიფის, შეკვეთის, "
        "მიწოდების, დაბრუნების, ქსელის დაზიანების ან მოწყობილობების შესახებ.",
        "sr": "Pozdrav! Ja sam virtuelni asistent kompanije Brightline. Pitajte me o računu, tarifnom paketu, "
        "porudžbini, dostavi, vraćanju robe, prekidima u mreži ili uređajima.",
        "lv": "Sveiki! Esmu Brightline virtuālais asistents. Jautājiet man par rēķinu, tarifa plānu, pasūtījumu, "
        "piegādi, preču atgriešanu, tīkla traucējumiem vai ierīcēm.",
        "tl": "Magandang araw po! Ako ang virtual assistant ng Brightline. Magtanong po kayo tungkol sa inyong "
        "bill, plan, order, delivery, pagbabalik ng item, mga outage o mga device.",
    },
    "goodbye": {
        "en": "Thanks for chatting with Brightline. Have a great day!",
        "ru": "Спасибо, что обратились в Brightline. Хорошего дня!",
        "ka": "გმადლობთ, რომ დაგვიკავშირდით. კარგი დღე გქონდეთ!",
        "sr": "Hvala što ste se obratili kompaniji Brightline. Želimo vam prijatan dan!",
        "lv": "Paldies, ka sazinājāties ar Brightline. Jauku dienu!",
        "tl": "Salamat po sa pakikipag-usap sa Brightline. Magandang araw po!",
    },
    "you_are_welcome": {
        "en": "You're welcome! Is there anything else I can help you with?",
        "ru": "Пожалуйста! Могу ли я ещё чем-то помочь?",
        "ka": "არაფრის! კიდევ რამით შემიძლია დაგეხმაროთ?",
        "sr": "Nema na čemu! Mogu li vam još nečim pomoći?",
        "lv": "Lūdzu! Vai varu jums vēl ar ko palīdzēt?",
        "tl": "Walang anuman po! May iba pa po ba akong maitutulong sa inyo?",
    },
    "iamabot": {
        "en": "I'm Brightline's virtual assistant, a bot. I can answer most questions right away, and I can "
        "connect you with a person from our support team whenever you like.",
        "ru": "Я виртуальный помощник Brightline, то есть бот. На большинство вопросов отвечаю сразу, а в любой "
        "момент могу соединить вас с сотрудником поддержки.",
        "ka": "მე Brightline-ის ვირტუალური ასისტენტი ვარ, ანუ ბოტი. კითხვების უმეტესობას მაშინვე ვპასუხობ და "
        "ნებისმიერ დროს შემიძლია დაგაკავშიროთ მხარდაჭერის თანამშრომელთან.",
        "sr": "Ja sam virtuelni asistent kompanije Brightline, odnosno bot. Na većinu pitanja odgovaram odmah, "
        "a kad god poželite, mogu da vas povežem sa nekim iz našeg tima podrške.",
        "lv": "Esmu Brightline virtuālais asistents jeb bots. Uz lielāko daļu jautājumu atbildu uzreiz, un "
        "jebkurā brīdī varu jūs savienot ar mūsu klientu atbalsta konsultantu.",
        "tl": "Ako po ang virtual assistant ng Brightline, isang bot. Nasasagot ko agad ang karamihan ng mga "
        "tanong, at maaari ko rin po kayong ikonekta sa isang tao mula sa aming support team anumang oras.",
    },
    "affirm": {
        "en": "Great! Is there anything else I can help you with?",
        "ru": "Отлично! Чем ещё могу помочь?",
        "ka": "შესანიშნავია! კიდევ რამით შემიძლია დაგეხმაროთ?",
        "sr": "Odlično! Mogu li vam još nečim pomoći?",
        "lv": "Lieliski! Vai varu vēl ar ko palīdzēt?",
        "tl": "Mabuti naman po! May iba pa po ba akong maitutulong?",
    },
    "deny": {
        "en": "Sorry about that. Could you tell me a bit more, in other words? Or I can connect you with a person.",
        "ru": "Извините. Расскажите, пожалуйста, подробнее, другими словами. Или я соединю вас с сотрудником.",
        "ka": "ბოდიში. შეგიძლიათ სხვა სიტყვებით ამიხსნათ? ან დაგაკავშირებთ თანამშრომელთან.",
        "sr": "Izvinite zbog toga. Možete li mi to objasniti malo detaljnije, drugim rečima? Ili mogu da vas "
        "povežem sa operaterom.",
        "lv": "Atvainojiet! Lūdzu, pastāstiet nedaudz sīkāk, citiem vārdiem. Vai arī varu jūs savienot ar konsultantu.",
        "tl": "Paumanhin po. Maaari po ba ninyong ipaliwanag nang mas detalyado, sa ibang salita? O maaari ko "
        "po kayong ikonekta sa isang tao.",
    },
    "did_you_mean": {
        "en": "I want to make sure I get this right. Did you mean:",
        "ru": "Хочу убедиться, что правильно вас понял. Вы имели в виду:",
        "ka": "მინდა დავრწმუნდე, რომ სწორად გავიგე. ხომ არ გულისხმობდით:",
        "sr": "Želim da budem siguran da sam vas dobro razumeo. Da li ste mislili na:",
        "lv": "Gribu pārliecināties, ka sapratu pareizi. Vai jūs domājāt:",
        "tl": "Gusto ko pong masiguro na tama ang pagkakaintindi ko. Ito po ba ang ibig ninyong sabihin:",
    },
    "not_understood": {
        "en": "Sorry, I didn't understand that. Could you rephrase it? Or I can connect you with a person from "
        "our support team.",
        "ru": "Извините, я не понял. Попробуйте сформулировать иначе. Или я соединю вас с сотрудником поддержки.",
        "ka": "ბოდიში, ვერ გავიგე. სცადეთ სხვა სიტყვებით, ან დაგაკავშირებთ მხარდაჭერის თანამშრომელთან.",
        "sr": "Izvinite, nisam razumeo. Možete li to da preformulišete? Ili mogu da vas povežem sa nekim iz "
        "našeg tima podrške.",
        "lv": "Atvainojiet, es to nesapratu. Lūdzu, pamēģiniet pajautāt citiem vārdiem. Vai arī varu jūs "
        "savienot ar mūsu klientu atbalsta konsultantu.",
        "tl": "Paumanhin po, hindi ko po iyon naintindihan. Maaari po ba ninyong sabihin sa ibang paraan? O "
        "maaari ko po kayong ikonekta sa isang tao mula sa aming support team.",
    },
    "out_of_scope": {
        "en": "I can only help with Brightline services: bills, plans, orders, deliveries, returns, outages and "
        "devices. Is there something about those I can help you with? Or I can connect you with a person.",
        "ru": "Я могу помочь только с услугами Brightline: счетами, тарифами, заказами, доставкой, возвратами, "
        "авариями в сети и устройствами. Есть вопрос по этим темам? Или я соединю вас с сотрудником.",
        "ka": "დახმარება მხოლოდ Brightline-ის მომსახურებასთან დაკავშირებით შემიძლია: ანგარიში, ტარიფი, შეკვეთა, "
        "მიწოდება, დაბრუნება, ქსელის დაზიანება და მოწყობილობები. რამეში ამათგან ხომ არ გჭირდებათ დახმარება? "
        "ან დაგაკავშირებთ თანამშრომელთან.",
        "sr": "Mogu da pomognem samo oko usluga kompanije Brightline: računa, tarifnih paketa, porudžbina, "
        "dostave, vraćanja robe, prekida u mreži i uređaja. Da li vam treba pomoć oko nečeg od toga? Ili mogu "
        "da vas povežem sa operaterom.",
        "lv": "Varu palīdzēt tikai ar Brightline pakalpojumiem: rēķiniem, tarifu plāniem, pasūtījumiem, piegādi, "
        "preču atgriešanu, tīkla traucējumiem un ierīcēm. Vai jums vajag palīdzību kādā no šiem jautājumiem? "
        "Vai arī varu jūs savienot ar konsultantu.",
        "tl": "Sa mga serbisyo lang po ng Brightline ako makakatulong: bill, plan, order, delivery, pagbabalik ng "
        "item, mga outage at mga device. May maitutulong po ba ako tungkol sa mga ito? O maaari ko po kayong "
        "ikonekta sa isang tao.",
    },
    "talk_to_person": {
        "en": "Talk to a person",
        "ru": "Связаться с человеком",
        "ka": "ადამიანთან საუბარი",
        "sr": "Razgovor sa operaterom",
        "lv": "Sazināties ar konsultantu",
        "tl": "Makipag-usap sa isang tao",
    },
    "handoff_queue": {
        "en": "I'm connecting you with a person from our support team. You are number {position} in the queue; "
        "expected wait: about {minutes} minute{plural}. They will see this whole conversation, so you won't "
        "need to repeat yourself.",
        "ru": "Соединяю вас с сотрудником поддержки. Вы {position}-й в очереди; ожидание около {minutes} мин. "
        "Сотрудник увидит всю переписку, повторять ничего не нужно.",
        "ka": "გაკავშირებთ მხარდაჭერის თანამშრომელთან. რიგში ხართ {position}-ე; მოლოდინი დაახლოებით {minutes} "
        "წთ. თანამშრომელი მთელ მიმოწერას დაინახავს, ასე რომ, გამეორება არ დაგჭირდებათ.",
        "sr": "Povezujem vas sa nekim iz našeg tima podrške. Trenutno ste {position}. u redu; očekivano vreme "
        "čekanja: oko {minutes} min. Ceo ovaj razgovor biće vidljiv našem timu, pa ništa nećete morati da "
        "ponavljate.",
        "lv": "Savienoju jūs ar mūsu klientu atbalsta konsultantu. Jūs esat {position}. vietā rindā; paredzamais "
        "gaidīšanas laiks: aptuveni {minutes} min. Konsultants redzēs visu šo sarunu, tāpēc jums nekas nebūs "
        "jāatkārto.",
        "tl": "Ikinokonekta ko na po kayo sa isang tao mula sa aming support team. Ika-{position} po kayo sa "
        "pila; tinatayang paghihintay: mga {minutes} min. Makikita nila ang buong usapang ito, kaya hindi na po "
        "ninyo kailangang ulitin ang inyong sinabi.",
    },
    "handoff_nobody": {
        "en": "I've passed your conversation to our support team. No one is available right now, but your "
        "messages are saved here and a person will reply as soon as someone is back. You don't need to repeat "
        "anything.",
        "ru": "Я передал ваш разговор в службу поддержки. Сейчас свободных сотрудников нет, но ваши сообщения "
        "сохранены, и вам ответят здесь, как только кто-то освободится. Повторять ничего не нужно.",
        "ka": "თქვენი საუბარი გადავეცი მხარდაჭერის გუნდს. ამჟამად თავისუფალი თანამშრომელი არ არის, მაგრამ "
        "თქვენი შეტყობინებები შენახულია და გიპასუხებენ აქ, როგორც კი ვინმე გათავისუფლდება.",
        "sr": "Prosledio sam vaš razgovor našem timu podrške. Trenutno niko nije slobodan, ali su vaše poruke "
        "sačuvane ovde i neko će vam odgovoriti čim se vrati. Ništa ne morate da ponavljate.",
        "lv": "Esmu nodevis jūsu sarunu mūsu klientu atbalsta komandai. Pašlaik neviens nav pieejams, taču jūsu "
        "ziņas ir saglabātas, un konsultants jums atbildēs šeit, tiklīdz kāds atgriezīsies. Nekas nav jāatkārto.",
        "tl": "Naipasa ko na po ang inyong usapan sa aming support team. Wala pong available sa ngayon, pero "
        "naka-save po rito ang inyong mga mensahe at may sasagot po sa inyo rito sa sandaling may makabalik. "
        "Hindi na po ninyo kailangang ulitin ang anuman.",
    },
    "handoff_after_hours": {
        "en": "I've passed your conversation to our support team. They're not in right now; we're here {hours} "
        "({zone} time). A person will reply here {back}. You can leave more details now, and you won't need to "
        "repeat anything.",
        "ru": "Я передал ваш разговор в службу поддержки. Сейчас сотрудники не работают; мы на связи {hours} "
        "(время {zone}). Вам ответят здесь {back}. Можете пока добавить подробности, повторять ничего не нужно.",
        "ka": "თქვენი საუბარი გადავეცი მხარდაჭერის გუნდს. ამჟამად არ ვმუშაობთ; ვმუშაობთ {hours} ({zone} დროით). "
        "გიპასუხებენ აქ {back}. შეგიძლიათ დაამატოთ დეტალები, გამეორება არ დაგჭირდებათ.",
        "sr": "Prosledio sam vaš razgovor našem timu podrške. Tim trenutno ne radi; radno vreme je {hours} "
        "(vremenska zona {zone}). Neko će vam odgovoriti ovde {back}. Već sada možete dopisati dodatne "
        "detalje, a ništa nećete morati da ponavljate.",
        "lv": "Esmu nodevis jūsu sarunu mūsu klientu atbalsta komandai. Pašlaik komanda nestrādā; mūsu darba "
        "laiks ir {hours} (laika josla {zone}). Konsultants jums atbildēs šeit {back}. Jau tagad varat "
        "pievienot sīkāku informāciju, un jums nekas nebūs jāatkārto.",
        "tl": "Naipasa ko na po ang inyong usapan sa aming support team. Wala pa po sila ngayon; ang aming oras "
        "ng serbisyo ay {hours} (oras sa {zone}). May sasagot po sa inyo rito {back}. Maaari na po kayong "
        "mag-iwan ng karagdagang detalye, at hindi na ninyo kailangang ulitin ang anuman.",
    },
    "position": {
        "en": "You are now number {position} in the queue.",
        "ru": "Теперь вы {position}-й в очереди.",
        "ka": "ახლა რიგში ხართ {position}-ე.",
        "sr": "Sada ste {position}. u redu.",
        "lv": "Tagad jūs esat {position}. vietā rindā.",
        "tl": "Ika-{position} na po kayo sa pila.",
    },
    "expected_wait": {
        "en": " Expected wait: about {minutes} minute{plural}.",
        "ru": " Ожидание около {minutes} мин.",
        "ka": " მოლოდინი დაახლოებით {minutes} წთ.",
        "sr": " Očekivano vreme čekanja: oko {minutes} min.",
        "lv": " Paredzamais gaidīšanas laiks: aptuveni {minutes} min.",
        "tl": " Tinatayang paghihintay: mga {minutes} min.",
    },
    "agent_joined": {
        "en": "Hi, this is {agent} from the Brightline support team. I'm reading your conversation now.",
        "ru": "Здравствуйте, это {agent} из службы поддержки Brightline. Читаю вашу переписку.",
        "ka": "გამარჯობა, მე ვარ {agent} Brightline-ის მხარდაჭერის გუნდიდან. ვკითხულობ თქვენს მიმოწერას.",
        "sr": "Pozdrav, ovde {agent} iz tima podrške kompanije Brightline. Upravo čitam vašu prepisku.",
        "lv": "Labdien! Šeit {agent} no Brightline klientu atbalsta komandas. Pašlaik lasu jūsu sarunu.",
        "tl": "Magandang araw po, si {agent} po ito mula sa support team ng Brightline. Binabasa ko na po ang "
        "inyong usapan.",
    },
    "back_to_bot": {
        "en": "You're back with Brightline's virtual assistant. Ask me anything, or ask for a person again at "
        "any time.",
        "ru": "Вы снова общаетесь с виртуальным помощником Brightline. Спрашивайте что угодно или в любой момент "
        "попросите соединить с сотрудником.",
        "ka": "თქვენ კვლავ Brightline-ის ვირტუალურ ასისტენტთან ხართ. მკითხეთ ნებისმიერი რამ, ან ნებისმიერ დროს "
        "ითხოვეთ თანამშრომელი.",
        "sr": "Ponovo razgovarate sa virtuelnim asistentom kompanije Brightline. Pitajte me šta god želite, a "
        "razgovor sa operaterom možete ponovo zatražiti u bilo kom trenutku.",
        "lv": "Jūs atkal sarunājaties ar Brightline virtuālo asistentu. Jautājiet man jebko vai jebkurā brīdī "
        "atkal palūdziet savienot jūs ar konsultantu.",
        "tl": "Kausap na po ninyong muli ang virtual assistant ng Brightline. Magtanong po kayo ng kahit ano, o "
        "humiling muli na makausap ang isang tao anumang oras.",
    },
    "csat_question": {
        "en": "Your chat with our support team is closed. How would you rate the help you got, from 1 (poor) to 5 "
        "(excellent)?",
        "ru": "Чат со службой поддержки завершён. Оцените, пожалуйста, полученную помощь от 1 (плохо) до 5 (отлично).",
        "ka": "მხარდაჭერის ჩატი დასრულდა. შეაფასეთ მიღებული დახმარება 1-დან (ცუდი) 5-მდე (შესანიშნავი).",
        "sr": "Razgovor sa našim timom podrške je završen. Kako biste ocenili pomoć koju ste dobili, od 1 (loše) "
        "do 5 (odlično)?",
        "lv": "Saruna ar mūsu klientu atbalsta komandu ir noslēgta. Lūdzu, novērtējiet saņemto palīdzību no 1 "
        "(slikti) līdz 5 (izcili).",
        "tl": "Tapos na po ang inyong chat sa aming support team. Paano po ninyo ire-rate ang tulong na "
        "natanggap ninyo, mula 1 (hindi maganda) hanggang 5 (napakahusay)?",
    },
    "csat_thanks": {
        "en": "Thank you for your feedback! If you would like to tell us more, write it in your next message. And if "
        "you need anything else, just write here.",
        "ru": "Спасибо за оценку! Если хотите что-то добавить, напишите это следующим сообщением. А если "
        "понадобится что-то ещё, просто напишите здесь.",
        "ka": "გმადლობთ შეფასებისთვის! თუ რამის დამატება გსურთ, დაწერეთ შემდეგ შეტყობინებაში. თუ კიდევ რამე "
        "დაგჭირდებათ, უბრალოდ მოგვწერეთ აქ.",
        "sr": "Hvala na oceni! Ako želite nešto da dodate, napišite to u sledećoj poruci. A ako vam bude trebalo još "
        "nešto, samo nam pišite ovde.",
        "lv": "Paldies par vērtējumu! Ja vēlaties ko piebilst, uzrakstiet to nākamajā ziņā. Ja jums vēl kas būs "
        "vajadzīgs, vienkārši rakstiet šeit.",
        "tl": "Salamat po sa inyong rating! Kung may gusto pa po kayong idagdag, isulat lang po sa susunod na "
        "mensahe. Kung may kailangan pa po kayo, mag-message lang po kayo rito.",
    },
    "followup_invite": {
        "en": "If you'd rather we contact you, write your e-mail address or phone number here.",
        "ru": "Если удобнее, чтобы мы связались с вами сами, напишите здесь свой e-mail или номер телефона.",
        "ka": "თუ გირჩევნიათ, რომ ჩვენ დაგიკავშირდეთ, დაწერეთ აქ თქვენი ელფოსტა ან ტელეფონის ნომერი.",
        "sr": "Ako vam više odgovara da vas mi kontaktiramo, napišite ovde svoju e-mail adresu ili broj telefona.",
        "lv": "Ja vēlaties, lai mēs sazināmies ar jums, uzrakstiet šeit savu e-pasta adresi vai tālruņa numuru.",
        "tl": "Kung mas gusto po ninyong kami ang makipag-ugnayan sa inyo, isulat po rito ang inyong e-mail o "
        "numero ng telepono.",
    },
    "followup_saved": {
        "en": "Thank you. Someone from our team will contact you at {contact}. You can still add details here.",
        "ru": "Спасибо. Сотрудник нашей команды свяжется с вами: {contact}. Здесь можно добавить подробности.",
        "ka": "გმადლობთ. ჩვენი გუნდის წევრი დაგიკავშირდებათ: {contact}. აქ შეგიძლიათ დაამატოთ დეტალები.",
        "sr": "Hvala. Neko iz našeg tima će vas kontaktirati: {contact}. Ovde i dalje možete dopisati detalje.",
        "lv": "Paldies. Kāds no mūsu komandas ar jums sazināsies: {contact}. Šeit joprojām varat pievienot sīkāku "
        "informāciju.",
        "tl": "Salamat po. May makikipag-ugnayan po sa inyo mula sa aming team: {contact}. Maaari pa rin po kayong "
        "magdagdag ng detalye rito.",
    },
    "followup_invalid": {
        "en": "That doesn't look like an e-mail address or a phone number we could reach. Could you check it?",
        "ru": "Похоже, это не e-mail и не номер телефона, по которому можно связаться. Проверьте, пожалуйста.",
        "ka": "ეს არ ჰგავს ელფოსტას ან ტელეფონის ნომერს, რომლითაც დაგიკავშირდებით. გთხოვთ, გადაამოწმოთ.",
        "sr": "Ovo ne izgleda kao e-mail adresa ili broj telefona na koji bismo mogli da vas kontaktiramo. Možete li "
        "da proverite?",
        "lv": "Tas neizskatās pēc e-pasta adreses vai tālruņa numura, uz kuru varētu sazināties. Lūdzu, pārbaudiet.",
        "tl": "Mukhang hindi po ito e-mail o numero ng telepono na maaabot namin. Pakisuri po ulit.",
    },
    "transferred": {
        "en": "I'm passing you to a colleague who can help with this. They can see our whole conversation, so you "
        "won't need to repeat anything.",
        "ru": "Передаю вас коллеге, который поможет с этим вопросом. Он видит всю нашу переписку, так что "
        "повторять ничего не нужно.",
        "ka": "გადაგამისამართებთ კოლეგასთან, რომელიც ამ საკითხში დაგეხმარებათ. ის ხედავს ჩვენს მთელ მიმოწერას, "
        "ასე რომ არაფრის გამეორება არ დაგჭირდებათ.",
        "sr": "Prosleđujem vas kolegi koji može da pomogne oko ovoga. Vidi ceo naš razgovor, tako da ništa ne morate "
        "da ponavljate.",
        "lv": "Nododu jūs kolēģim, kurš varēs palīdzēt ar šo jautājumu. Viņš redz visu mūsu sarunu, tāpēc nekas "
        "nav jāatkārto.",
        "tl": "Ipapasa ko po kayo sa isang kasamahan na makakatulong dito. Nakikita niya ang buong usapan natin, "
        "kaya hindi na po ninyo kailangang ulitin ang anuman.",
    },
    "csat_comment_thanks": {
        "en": "Thank you, we will pass it on to the team. If you need anything else, just write here.",
        "ru": "Спасибо, мы передадим это команде. Если понадобится что-то ещё, просто напишите здесь.",
        "ka": "გმადლობთ, გადავცემთ გუნდს. თუ კიდევ რამე დაგჭირდებათ, უბრალოდ მოგვწერეთ აქ.",
        "sr": "Hvala, prenećemo to timu. Ako vam bude trebalo još nešto, samo nam pišite ovde.",
        "lv": "Paldies, mēs to nodosim komandai. Ja jums vēl kas būs vajadzīgs, vienkārši rakstiet šeit.",
        "tl": "Salamat po, ipaparating namin ito sa team. Kung may kailangan pa po kayo, mag-message lang po kayo "
        "rito.",
    },
    "guide_back": {
        "en": "Let's pick up where we left off.",
        "ru": "Продолжим с того места, где остановились.",
        "ka": "გავაგრძელოთ იქიდან, სადაც შევჩერდით.",
        "sr": "Nastavimo tamo gde smo stali.",
        "lv": "Turpināsim no vietas, kur apstājāmies.",
        "tl": "Ituloy po natin kung saan tayo huminto.",
    },
    # A button: at most 20 characters (WhatsApp's limit).
    "guide_resume_button": {
        "en": "Back to the steps",
        "ru": "Вернуться к шагам",
        "ka": "ნაბიჯებზე დაბრუნება",
        "sr": "Nazad na korake",
        "lv": "Atpakaļ pie soļiem",
        "tl": "Balik sa mga hakbang",
    },
    "guide_pick": {
        "en": "Sorry, I didn't catch that. Please tap one of the answers below, or tell me in your own words.",
        "ru": "Извините, не совсем понял. Нажмите один из ответов ниже или напишите своими словами.",
        "ka": "ბოდიში, ვერ გავიგე. აირჩიეთ ერთ-ერთი პასუხი ქვემოთ ან მომწერეთ საკუთარი სიტყვებით.",
        "sr": "Izvinite, nisam razumeo. Dodirnite jedan od odgovora ispod ili mi napišite svojim rečima.",
        "lv": "Atvainojiet, nesapratu. Lūdzu, pieskarieties kādai no atbildēm zemāk vai uzrakstiet saviem vārdiem.",
        "tl": "Pasensya na po, hindi ko nakuha. Pindutin po ang isa sa mga sagot sa ibaba, o sabihin sa sarili "
        "ninyong salita.",
    },
    "guide_exhausted": {
        "en": "I'm sorry these steps didn't fix it. I'm passing you to a person, with everything you've "
        "already tried, so you won't have to repeat it.",
        "ru": "Жаль, что эти шаги не помогли. Передаю вас сотруднику вместе со всем, что вы уже попробовали, "
        "чтобы вам не пришлось повторять.",
        "ka": "ვწუხვარ, რომ ამ ნაბიჯებმა არ უშველა. გადაგამისამართებთ თანამშრომელთან და გადავცემ ყველაფერს, "
        "რაც უკვე სცადეთ, რომ გამეორება არ მოგიწიოთ.",
        "sr": "Žao mi je što ovi koraci nisu pomogli. Prebacujem vas na operatera, zajedno sa svim što ste već "
        "probali, da ne morate da ponavljate.",
        "lv": "Man žēl, ka šie soļi nepalīdzēja. Nododu jūs konsultantam kopā ar visu, ko jau esat izmēģinājis, "
        "lai jums nebūtu jāatkārto.",
        "tl": "Pasensya na po at hindi ito naayos ng mga hakbang. Ipapasa ko po kayo sa isang tao, kasama ang "
        "lahat ng nasubukan na ninyo, para hindi na ninyo kailangang ulitin.",
    },
    "answer_in_default_language": {
        "en": "I don't have this answer in English yet, so here it is in another language.",
        "ru": "Этого ответа пока нет на русском языке, поэтому отправляю его на английском.",
        "ka": "ეს პასუხი ქართულად ჯერ არ მაქვს, ამიტომ გიგზავნით ინგლისურად.",
        "sr": "Ovaj odgovor još nije dostupan na srpskom, pa vam ga šaljem na engleskom.",
        "lv": "Šī atbilde vēl nav pieejama latviešu valodā, tāpēc sūtu to angliski.",
        "tl": "Wala pa po akong sagot na ito sa Tagalog, kaya narito po ito sa Ingles.",
    },
}

_DAYS = {
    "en": ("today", "tomorrow", "on {weekday}", ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                                 "Saturday", "Sunday")),
    "ru": ("сегодня", "завтра", "{weekday}", ("в понедельник", "во вторник", "в среду", "в четверг",
                                              "в пятницу", "в субботу", "в воскресенье")),
    "ka": ("დღეს", "ხვალ", "{weekday}", ("ორშაბათს", "სამშაბათს", "ოთხშაბათს", "ხუთშაბათს", "პარასკევს",
                                          "შაბათს", "კვირას")),
    "sr": ("danas", "sutra", "{weekday}", ("u ponedeljak", "u utorak", "u sredu", "u četvrtak", "u petak",
                                           "u subotu", "u nedelju")),
    "lv": ("šodien", "rīt", "{weekday}", ("pirmdien", "otrdien", "trešdien", "ceturtdien", "piektdien",
                                          "sestdien", "svētdien")),
    "tl": ("ngayong araw", "bukas", "sa {weekday}", ("Lunes", "Martes", "Miyerkules", "Huwebes", "Biyernes",
                                                     "Sabado", "Linggo")),
}  # fmt: skip
_AT = {
    "en": "{day} at {time}",
    "ru": "{day} в {time}",
    "ka": "{day} {time}-ზე",
    "sr": "{day} u {time}",
    "lv": "{day} plkst. {time}",
    "tl": "{day} nang {time}",
}


def say(key: str, language: str | None = None, **values: object) -> str:
    """The text for ``key`` in ``language`` (English if there is none), filled with ``values``."""
    texts = TEXTS[key]
    text = texts.get(language or FALLBACK) or texts[FALLBACK]
    minutes = values.get("minutes")
    return text.format(plural="" if minutes == 1 else "s", **values)


def when(at: datetime, now: datetime, language: str | None = None) -> str:
    """'tomorrow at 08:00' as the customer reads it, in their language."""
    today, tomorrow, weekday_form, weekdays = _DAYS.get(language or FALLBACK, _DAYS[FALLBACK])
    days = (at.date() - now.astimezone(at.tzinfo).date()).days
    day = today if days == 0 else tomorrow if days == 1 else weekday_form.format(weekday=weekdays[at.weekday()])
    return _AT.get(language or FALLBACK, _AT[FALLBACK]).format(day=day, time=f"{at:%H:%M}")


def csat_buttons() -> list[dict[str, str]]:
    """The 1-5 rating buttons; their payload is read by ``action_store_csat``."""
    return [{"title": str(n), "payload": f'/csat{{"csat_score": "{n}"}}'} for n in range(1, 6)]
